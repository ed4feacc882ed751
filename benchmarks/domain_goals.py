"""The numbers of ``bench_domains.py`` gathered over seeds, and the issue's goals checked on them.

:func:`aggregate` turns the per-seed metrics into mean ± standard deviation (and keeps each
seed's value with its bootstrap interval); :func:`goals` writes one row per "Done when" line
of issue 16 (``{"metric", "value", "goal", "met"}``, the rows ``run_all.py`` gathers).
"""

from __future__ import annotations

import statistics
from typing import Any

from histosynth.evaluate.keys import slug

DUAL = ("spatial", "tokens")
DETECTORS = ("handcrafted", "random-init-cnn")
SPACES = ("stain", *DETECTORS)
REAL_HELDOUT = "real-heldout"
BASELINES = ("a-real+hed-jitter", "a-real/norm-macenko", "a-real/norm-reinhard")


def mean_std(values: list[float | None]) -> dict[str, Any] | None:
    """Mean, population standard deviation and count of the values that exist."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals), "n": len(vals), "values": vals}


def _per_seed(result: dict[str, Any], variant: str, key: str, space: str) -> list[dict[str, Any]]:
    out = []
    for s in result["seeds"]:
        m = s["metrics"].get(variant, {})
        out.append({"seed": s["seed"], "value": m.get(f"{key}_{space}"),
                    "ci": [m.get(f"{key}_ci_low_{space}"), m.get(f"{key}_ci_high_{space}")]})  # fmt: skip
    return out


def _over_seeds(result: dict[str, Any], variant: str, key: str, space: str) -> dict[str, Any] | None:
    """Mean ± std of ``<key>_<space>`` over seeds, with each seed's value and interval (None: never scored)."""
    seeds = _per_seed(result, variant, key, space)
    if not any(x["value"] is not None for x in seeds):
        return None
    return {**(mean_std([x["value"] for x in seeds]) or {}), "seeds": seeds}


def aggregate(result: dict[str, Any]) -> dict[str, Any]:
    """Per variant: per-domain FD per detector and adherence per space over seeds; the transfer table."""
    variants = list(result["seeds"][0]["metrics"])
    agg: dict[str, Any] = {"domainfd": {}, "adherence": {}, "per_lab": {}}
    labs = result["seeds"][0].get("domains", [])
    for v in variants:
        agg["domainfd"][v] = {}
        for det in DETECTORS:
            seeds = _per_seed(result, v, "domainfd", det)
            agg["domainfd"][v][det] = {**(mean_std([x["value"] for x in seeds]) or {}), "seeds": seeds}
            agg["per_lab"].setdefault(v, {})[det] = {
                lab: mean_std([s["metrics"][v].get(f"domainfd_{slug(lab)}_{det}") for s in result["seeds"]])
                for lab in labs
            }
        agg["adherence"][v] = {
            space: a for space in SPACES if (a := _over_seeds(result, v, "adherence", space)) is not None
        }
    # the crop-blind end of the scale, on the real row (histosynth.evaluate.domains)
    agg["domainfd_blind"] = {
        det: a for det in DETECTORS if REAL_HELDOUT in variants
        and (a := _over_seeds(result, REAL_HELDOUT, "domainfd_blind", det)) is not None
    }  # fmt: skip
    rows: dict[str, list[float]] = {}
    for row in result["transfer"]["table"]:
        name = row["condition"]
        if name.startswith("a-real+synthetic:"):  # one row per model, pooled over generator seeds
            name = name.rsplit(".seed", 1)[0]
        rows.setdefault(name, []).extend(row["miou"])
    agg["transfer"] = {name: mean_std(vals) for name, vals in rows.items()}
    return agg


def _separated(fd: dict[str, Any], dual: dict[str, Any]) -> tuple[int, int]:
    """Seeds whose dual interval lies wholly below the map-only interval, and seeds compared."""
    pairs = list(zip(fd["seeds"], dual["seeds"], strict=True))
    ok = sum(1 for m, d in pairs if None not in (m["ci"][0], d["ci"][1]) and d["ci"][1] < m["ci"][0])
    return ok, len(pairs)


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The Done-when rows of issue 16, computed from the run (``result["aggregate"]`` is filled)."""
    agg = result.setdefault("aggregate", aggregate(result))
    rows = []
    for det in DETECTORS:
        ref = agg["domainfd"]["map"][det]
        for v in DUAL:
            dual = agg["domainfd"][v][det]
            ratio = ref["mean"] / dual["mean"] if ref.get("mean") is not None and dual.get("mean") else None
            apart, n = _separated(ref, dual)
            rows.append({"metric": f"per-domain FD map-only / {v} ({det})",
                         "value": f"{ratio:.2f}×, intervals apart in {apart}/{n} seeds" if ratio else "–",
                         "goal": "≥ 2×, intervals apart", "met": bool(ratio and ratio >= 2 and apart == n)})  # fmt: skip
    for v in ("map", *DUAL):
        for space in SPACES:
            a = agg["adherence"].get(v, {}).get(space)
            if not a or "mean" not in a:
                continue
            goal = "0.9–1.1" if v == "map" else "≤ 0.5"
            met = 0.9 <= a["mean"] <= 1.1 if v == "map" else a["mean"] <= 0.5
            rows.append({"metric": f"crop adherence {v} ({space})", "value": f"{a['mean']:.3f} ± {a['std']:.3f}",
                         "goal": goal, "met": bool(met)})  # fmt: skip
    t = agg["transfer"]
    best = max((t[b]["mean"] for b in BASELINES if t.get(b)), default=None)
    for v in DUAL:
        syn = t.get(f"a-real+synthetic:{v}")
        if not syn or not t.get("a-real"):
            continue
        gain = syn["mean"] - t["a-real"]["mean"]
        rows.append({"metric": f"transfer mIoU gain over A-real ({v})", "value": f"{gain:+.3f}", "goal": "≥ +0.05",
                     "met": gain >= 0.05})  # fmt: skip
        if best is not None:
            rows.append({"metric": f"transfer mIoU minus best baseline ({v})", "value": f"{syn['mean'] - best:+.3f}",
                         "goal": "≥ 0", "met": syn["mean"] >= best})  # fmt: skip
    return rows
