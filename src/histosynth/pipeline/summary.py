"""The plan on one screen: slides, maps, split, model, synthesis, evaluation, disk and time."""

from __future__ import annotations

from histosynth.artifacts import is_complete
from histosynth.diffusion.conditioning import SHORT_NAMES as VARIANTS
from histosynth.pipeline.plan import Plan, name_list

__all__ = ["plan_summary"]


def _mb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def plan_summary(plan: Plan) -> str:
    """What the run will do and what it should cost, in about twenty lines."""
    cfg, facts = plan.cfg, plan.labels
    mpps = sorted({round(s.mpp, 3) for s in plan.slides.values()})
    rows = [
        (
            "slides",
            f"{len(plan.slides)} ({name_list(list(plan.slides), 4)}), level-0 {'/'.join(map(str, mpps))} µm/px",
        )
    ]
    if plan.skipped:
        rows.append(("left out", "; ".join(f"{k}: {v}" for k, v in list(plan.skipped.items())[:2])))
    split = f"by region (blocks of {cfg.region_um:g} µm)" if plan.split_by == "region" else "by slide"
    rows.append(("split", f"{split}: train / val / test; held-out real patches are the test split"))
    rows.append(("patches", f"{cfg.size} px at {cfg.patch_mpp:g} µm/px, overlap {cfg.overlap} px, "
                            f"tissue ≥ {cfg.min_tissue:.0%}"))  # fmt: skip
    if facts.source == "annotations":
        given = len(facts.matched) + len(facts.unannotated) + len(facts.skipped)
        maps = (
            f"annotations: {len(facts.matched)} of {given} slides matched; classes {', '.join(facts.classes)}"
        )
    elif facts.source == "stain":
        maps = "stain-derived two-class maps (a stand-in for annotations)"
    else:
        maps = f"pseudo-maps: {cfg.encoder} embeddings → {cfg.clusters} tissue types"
    rows.append(("maps", maps + (" (+ the unannotated path beside it)" if cfg.both_paths and facts.source != "pseudo"
                                 else "")))  # fmt: skip
    variants = ", ".join(f"{v} ({VARIANTS.get(v, '?')})" for v in cfg.variants)
    budget = (f"{cfg.train_steps} steps each" if cfg.train_steps > 0
              else f"{cfg.minutes:g} min in all, {cfg.reserve_minutes:g} of them after training")  # fmt: skip
    train = next(s.args[2] for s in plan.steps if s.stage == "train")
    model = f"preset {cfg.train_preset} ({train.model.backbone} backbone, {train.data.image_size} px)"
    rows.append(("model", f"{variants}; {model}; {budget}"))
    extra = " and without crops" if cfg.without_crops else ""
    large = (
        f"; {cfg.large_images} large images of {cfg.large_size} px per variant" if cfg.large_images else ""
    )
    rows.append(("synthesis", f"{cfg.n_samples}+ patches per variant (whole passes over the held-out maps){extra} ({cfg.sampler}, {cfg.sample_steps} steps)"
                              f"{large}"))  # fmt: skip
    rows.append(
        (
            "evaluation",
            f"{', '.join(cfg.detectors)} vs the held-out real patches; preset {cfg.evaluate_preset}",
        )
    )
    est = plan.estimate
    if est is not None:
        rows.append(("disk", f"about {_mb(est.disk_bytes)} ({est.patches:,} patches from about {est.tiles:,} tiles), "
                             f"{_mb(est.free_bytes)} free"))  # fmt: skip
        parts = ", ".join(f"{k} {v:.1f}" for k, v in est.minutes.items() if v >= 0.05)
        total = f"{est.total:.0f}" if est.total >= 10 else f"{est.total:.1f}"
        rows.append(("time", f"about {total} min on this machine ({parts} min)"))
    done = [s for s in plan.steps if s.stage != "report" and is_complete(s.folder)]
    state = f"resuming: {len(done)} of {len(plan.steps)} steps done" if done else "new"
    rows.append(("out", f"{plan.out} ({state})"))
    width = max(len(k) for k, _ in rows)
    lines = ["histosynth run: the plan", *(f"  {k:<{width}}  {v}" for k, v in rows)]
    lines += [f"  note: {n}" for n in plan.notes]
    return "\n".join(lines)
