"""Write ``docs/domains.md`` from the JSON of ``benchmarks/bench_domains.py``.

Every number on the page comes from that file (none is typed in); the picture is copied from
the run to ``docs/img/domains-labs.png``. A quick run (``--quick``) is written with a banner
saying its numbers check the code, not the claim.

Usage::

    python benchmarks/bench_domains.py                          # -> benchmarks/results/bench_domains.json
    python scripts/write_domains.py benchmarks/results/bench_domains.json   # -> docs/domains.md

(``make results-domains`` runs both.)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"map": "map only", "spatial": "map + crops (spatial)", "tokens": "map + crops (tokens)"}
NEW = ".new-lab"
TRANSFER = {
    "a-real": "A real only",
    "a-real/norm-macenko": "A real; B Macenko-normalised at test",
    "a-real/norm-reinhard": "A real; B Reinhard-normalised at test",
    "a-real+hed-jitter": "A real + HED jitter",
    "a-real+synthetic:spatial": "A real + synthetic B, map + crops (spatial)",
    "a-real+synthetic:tokens": "A real + synthetic B, map + crops (tokens)",
    "b-real": "B real (uses B's annotations: the ceiling)",
}


def _f(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _ms(a: dict | None) -> str:
    return "–" if not a or "mean" not in a else f"{_f(a['mean'])} ± {_f(a['std'], 2)}"


def _seeds(a: dict | None) -> str:
    if not a:
        return "–"
    return "; ".join(f"{_f(s['value'])} [{_f(s['ci'][0])}, {_f(s['ci'][1])}]" for s in a["seeds"])


def _name(v: str) -> str:
    if v.endswith(NEW):
        return f"{NAMES.get(v[: -len(NEW)], v)}, new lab's crops"
    return NAMES.get(v, "real held-out (floor)" if v == "real-heldout" else v)


def _labs_table(r: dict) -> list[str]:
    keys = ("h_scale", "e_scale", "h_bias", "e_bias", "h_angle", "e_angle", "blur_um", "jpeg_quality")
    out = ["| lab | role | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for lab in r["labs"]:
        role = (
            "new lab (never seen by the generator)" if lab["name"] == r["plan"]["new_lab"] else "training lab"
        )
        role += ", source of the transfer" if lab["name"] == r["plan"]["source"] else ""
        out.append(f"| {lab['name']} | {role} | " + " | ".join(_f(lab[k]) for k in keys) + " |")
    return out


def _strength(r: dict) -> list[str]:
    """What the labs' ranges are and where they come from (runs before the strengths: ``mild``)."""
    strength = r["plan"].get("strength", "mild")
    if "ranges" in r:
        g = r["ranges"]
    else:  # a run that did not record them: its strength's ranges as this checkout defines them
        from dataclasses import asdict

        from histosynth.domains.labs import LAB_STRENGTHS

        g = asdict(LAB_STRENGTHS[strength])
    where = {
        "mild": "the shift is HED-light's range read in natural OD, the turns about half the gap between the "
        "published reference vectors",
        "strong": "the shift is HED-strong's range read in natural OD (the smaller of its two readings), the turns "
        "up to the whole gap between the published reference vectors",
    }.get(strength, "")
    return [f"Lab strength `{strength}` (`LAB_STRENGTHS`): concentration scale {_f(g['scale'][0])}–{_f(g['scale'][1])} "
            f"(Tellez et al. 2019's HED-strong), shift ±{_f(g['bias'][1])} OD, hematoxylin turned at most "
            f"{_f(g['h_angle'][1])}°, eosin {_f(g['e_angle'][1])}° (Ruifrok & Johnston's and Macenko et al. 2009's "
            f"reference vectors are 8.4° and 29.4° apart); {where}. Scanner: blur σ ≤ {_f(g['blur_um'][1])} µm and "
            f"JPEG quality {g['jpeg_quality'][0]}–{g['jpeg_quality'][1]} (our choice, not from a publication)."]  # fmt: skip


def _transfer_notes(r: dict) -> list[str]:
    """Where the new lab lies against the training labs, and how far the best baseline gets."""
    plan, agg = r["plan"], r["aggregate"]["transfer"]
    keys = ("h_scale", "e_scale", "h_bias", "e_bias", "h_angle", "e_angle", "blur_um", "jpeg_quality")
    new = next((lab for lab in r["labs"] if lab["name"] == plan["new_lab"]), None)
    train = [lab for lab in r["labs"] if lab["name"] in r["train_labs"]]
    out = []
    if new and train:
        beyond = [k for k in keys if not min(t[k] for t in train) <= new[k] <= max(t[k] for t in train)]
        out.append(f"{plan['new_lab']} lies outside the training labs' range in {len(beyond)} of {len(keys)} "
                   f"parameters ({', '.join(beyond) or 'none'}): a generator rendering it from its crops "
                   "extrapolates there.")  # fmt: skip
    ceiling = (agg.get("b-real") or {}).get("mean")
    base = {
        k: a["mean"] for k, a in agg.items() if a and (k.startswith("a-real/") or k == "a-real+hed-jitter")
    }
    if ceiling and base:
        best = max(base, key=base.get)
        out.append(f"The best baseline, {TRANSFER.get(best, best)}, reaches {base[best] / ceiling:.0%} of the "
                   "ceiling: a simulated lab is a stain and scanner transform of the same tissue, which test-time "
                   "normalisation largely undoes.")  # fmt: skip
    return out


def _train_minutes(r: dict) -> float:
    """Training time per seed, from each run's steps and median step time."""
    per = [sum(t["steps"] * (t["s_per_step"] or 0) for t in s["train"].values()) for s in r["seeds"]]
    return sum(per) / len(per) / 60 if per else 0.0


def _guidance_table(r: dict, dets: list[str]) -> list[str]:
    """Seed 0 at each crop guidance of the run: per-domain FD ratio against adherence."""
    sweep = r.get("guidance_sweep") or []
    if not sweep:
        return []
    dual = ("spatial", "tokens")
    points = sorted([{"guidance_crops": r["plan"]["guidance_crops"], "metrics": r["seeds"][0]["metrics"]}, *sweep],
                    key=lambda p: p["guidance_crops"])  # fmt: skip

    def ratio(m, v, d):
        ref, own = m["map"].get(f"domainfd_{d}"), m[v].get(f"domainfd_{d}")
        return ref / own if ref and own else None

    head = [f"FD map-only / {v} ({d})" for d in dets for v in dual]
    head += [f"adherence {v} ({s})" for s in ("stain", *dets) for v in dual]
    out = ["", "## Guidance on the crops", "",
           "Seed 0's models sampled again with other classifier-free guidance on the crops (the same maps, "
           "crops and sampling seeds; no transfer). Guidance pushes each image towards its crop: adherence "
           "falls, and per-domain FD shows what that costs in realism.", "",
           "| guidance | " + " | ".join(head) + " |", "|---" * (1 + len(head)) + "|"]  # fmt: skip
    for p in points:
        m = p["metrics"]
        cells = [f"{x:.2f}×" if (x := ratio(m, v, d)) else "–" for d in dets for v in dual]
        cells += [_f(m[v].get(f"adherence_{s}")) for s in ("stain", *dets) for v in dual]
        mark = " (this run)" if p["guidance_crops"] == r["plan"]["guidance_crops"] else ""
        out.append(f"| {p['guidance_crops']:g}{mark} | " + " | ".join(cells) + " |")
    return out


def page(r: dict, picture: str) -> str:
    agg, plan, m = r["aggregate"], r["plan"], r["machine"]
    dets = list(next(iter(agg["domainfd"].values())))
    lines = ["# Crops carry the lab: simulated labs, crop adherence, transfer to a new lab", "",
             "<!-- written by scripts/write_domains.py from the JSON of benchmarks/bench_domains.py; "
             "do not edit by hand: re-run it -->", ""]  # fmt: skip
    if r.get("quick"):
        lines += ["> **Quick check** (`--quick`): tiny sizes that run every step in minutes. These numbers show",
                  "> the code works end to end; they are not the measurement. `make results-domains` makes it.", ""]  # fmt: skip
    lines += [
        "## What is simulated and why", "",
        "The paper's gain from crops (FD 430 → 72 on Camelyon16) comes from many slides whose stain and scanner "
        "differ; `docs/results.md` measured 1.03–1.26× on the bundled slide, one stain, where a crop says little "
        "that the class id does not. Stain and scanner are the largest differences between H&E slides of "
        "different labs, so this benchmark makes labs from the real slide with a known, seeded transform "
        "(`histosynth domains`, `src/histosynth/domains/labs.py`): colour deconvolution into hematoxylin, eosin and "
        "a residual (Ruifrok & Johnston 2001), each stain's concentration scaled and shifted (the stain-intensity "
        "model of HED augmentation, Tellez et al. 2018), the stain vectors turned, then blur and JPEG compression "
        "for the scanner. Every lab holds the same tissue and maps, so what differs between labs is only how they "
        "stain and scan.", "",
        *_strength(r), "",
        f"{len(r['labs'])} labs, drawn by stratified sampling (seed {plan['lab_seed']}); the generator trains on "
        f"{', '.join(r['train_labs'])}; {plan['new_lab']} is the new lab of the transfer:", "",
        *_labs_table(r), "",
        "## Command", "", "```", r["command"], f"python scripts/write_domains.py {r.get('json', 'RESULT.json')}",
        "```", "(`make results-domains` runs both.)", "",
        "## Setup", "",
        f"- Machine: {m['cpu']}, {m['cores']} logical cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"Python {m['python']}; the last invocation {r['minutes']:.0f} minutes (a re-run resumes finished stages), "
        f"load average {r['load'][0]:.1f} at the start, "
        f"{r['load'][1]:.1f} at the end.",
        f"- Data: the demo's patches of the bundled CMU slide (64 px at 1 µm/px, stain-derived maps, region splits): "
        f"{r['counts']['train']} training and {r['counts']['test']} held-out maps, each in every lab.",
        f"- Generators: preset `cpu-tiny`, the three conditioning variants, {plan['steps']} optimiser steps each "
        f"(equal steps), {plan['seeds']} seed{'s' if plan['seeds'] != 1 else ''} (model, sampling and evaluation seed). Steps and median s/step per "
        "seed: " + "; ".join(f"seed {s['seed']}: " + ", ".join(f"{v} {t['steps']} @ {_f(t['s_per_step'])} s"
                                                            for v, t in s["train"].items()) for s in r["seeds"])
        + f" (training about {_train_minutes(r):.0f} minutes a seed).",
        f"- Sampling: `{plan['sampler']}` {plan['sample_steps']} steps, guidance map 1 / crops {plan['guidance_crops']}; "
        "each held-out map rendered once with the crops of each training lab (same noise), the map-only model "
        "with the crops it would have been given recorded (`reference_crops`).",
        f"- Evaluation: `histosynth evaluate` against the real patches of all labs, detectors {', '.join(dets)}, "
        f"{plan['bootstrap']} bootstrap replicates (95 % intervals).",
        f"- Transfer: DeepLabv3+ (ResNet-18, random init), {plan['segmenter_steps']} steps, "
        f"{plan['segmenter_seeds']} segmenter seeds per condition (synthetic conditions: also every generator seed); "
        f"trained in {plan['source']} ({r['transfer']['train_images']} patches), tested on {plan['new_lab']}'s "
        f"{r['transfer']['test_images']} held-out patches; synthetic {plan['new_lab']}: {plan['source']}'s training maps "
        f"with at most {plan['few_crops']} crops per class of {plan['new_lab']}; HED jitter draws α within "
        f"±{_f(r['transfer']['config']['jitter_scale'])} and β within ±{_f(r['transfer']['config']['jitter_bias'])} OD "
        "per stain.", "",
        "## The same map in every lab", "",
        f"![one held-out map](img/{Path(picture).name})", "",
        f"Top row: the map, then the real patch as each training lab ({', '.join(r['train_labs'])}) stains and scans "
        "it. Second row: the crops each lab gave. Then one row per model (map only, map + crops spatial, map + "
        "crops tokens; seed 0): the same map and noise with each lab's crops.", "",
        "## Per-domain FD", "",
        "Images made with one lab's crops against that lab's held-out real patches, averaged over labs; mean ± "
        "standard deviation over seeds, then each seed's value with its bootstrap interval. The floor is each "
        "lab's held-out patches against its training patches.", "",
    ]  # fmt: skip
    head = "| images | " + " | ".join(f"{d}: mean ± std | {d}: per seed [95 % CI]" for d in dets) + " |"
    lines += [head, "|---" * (1 + 2 * len(dets)) + "|"]
    for v, per in agg["domainfd"].items():
        lines.append(
            f"| {_name(v)} | " + " | ".join(f"{_ms(per[d])} | {_seeds(per[d])}" for d in dets) + " |"
        )
    blind = agg.get("domainfd_blind") or {}
    if blind:
        lines.append("| real, every training lab pooled (crop-blind, made perfectly) | "
                     + " | ".join(f"{_ms(blind.get(d))} | {_seeds(blind.get(d))}" for d in dets) + " |")  # fmt: skip
    lines += ["", "Rows with the new lab's crops are scored on that lab alone."]
    if blind:
        floor = agg["domainfd"].get("real-heldout", {})
        ratios = [f"{_f(blind[d]['mean'] / floor[d]['mean'])}× ({d})" for d in dets
                  if d in blind and floor.get(d, {}).get("mean")]  # fmt: skip
        lines += ["", "The last row is the other end of the scale: each lab's held-out patches against as many "
                  "training patches drawn from every training lab pooled, what a generator that ignores its crops "
                  "would make if it made each lab's tissue perfectly. Its FD over the floor, "
                  f"{', '.join(ratios)}, is the ratio real tissue shows between ignoring the lab and keeping it. "
                  "The synthetic rows are not bound by it: they are rendered from the held-out maps themselves, so "
                  "their class mix matches the held-out patches exactly, which the floor's training patches do not "
                  "(the same reason a crop model can score below the floor)."]  # fmt: skip
    lines += ["", "## Crop adherence", "",
              "A generated region's distance to its own crop over its mean distance to same-class crops of the "
              "other labs (below 1: it follows its crop; about 1: it ignores it), in stain statistics and in each "
              "detector's features; mean ± std over seeds, then per seed [95 % CI].", ""]  # fmt: skip
    spaces = ["stain", *dets]
    lines += ["| images | " + " | ".join(f"{s}: mean ± std | {s}: per seed" for s in spaces) + " |",
              "|---" * (1 + 2 * len(spaces)) + "|"]  # fmt: skip
    rows = sorted(agg["adherence"].items(), key=lambda kv: kv[0] == "real-heldout")  # the scale last
    for v, per in rows:
        if not any(per.get(s) for s in spaces):  # runs before the real row was scored
            continue
        name = "real held-out, own lab's crops (the scale)" if v == "real-heldout" else _name(v)
        lines.append(
            f"| {name} | " + " | ".join(f"{_ms(per.get(s))} | {_seeds(per.get(s))}" for s in spaces) + " |"
        )
    lines += ["", "Rows with the new lab's crops hold one lab only, so the map-only control need not be 1 there: it "
              "says how far the new lab lies from the training labs; read the crop models against it. The real "
              "row scores each lab's held-out patches against a same-class crop of another patch of their lab: "
              "what a generator that reproduced every lab exactly would score. It lies well below 1 only when "
              "the labs differ more than patches within one lab do.", "",
              f"## Transfer to {plan['new_lab']} without its annotations", "",
              f"mIoU on {plan['new_lab']}'s held-out real patches, mean ± std over all runs of the condition (n).", "",
              "| training data | mIoU | n |", "|---|---|---|"]  # fmt: skip
    for key, a in agg["transfer"].items():
        lines.append(f"| {TRANSFER.get(key, key)} | {_ms(a)} | {a['n'] if a else 0} |")
    lines += ["", *_transfer_notes(r)]
    lines += _guidance_table(r, dets)
    lines += ["", "## Goals (issue 16)", "", "| goal | measured | target | met |", "|---|---|---|---|"]
    for row in r["summary"]:
        lines.append(
            f"| {row['metric']} | {row['value']} | {row['goal']} | {'yes' if row['met'] else 'no'} |"
        )
    met = sum(1 for row in r["summary"] if row["met"])
    lines += ["", f"{met} of {len(r['summary'])} goal rows are met in this run.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result", type=Path, help="the JSON of benchmarks/bench_domains.py")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "domains.md")
    args = ap.parse_args(argv)
    r = json.loads(args.result.read_text())
    r["json"] = (
        str(args.result.resolve().relative_to(ROOT))
        if args.result.resolve().is_relative_to(ROOT)
        else str(args.result)
    )
    picture = args.doc.parent / "img" / "domains-labs.png"
    picture.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(r["picture"], picture)
    args.doc.write_text(page(r, str(picture)))
    print(f"wrote {args.doc} and {picture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
