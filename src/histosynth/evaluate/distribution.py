"""Distribution metrics of one synthetic feature set against the real one, under one detector."""

from __future__ import annotations

from typing import Any

import numpy as np

from histosynth.evaluate.bootstrap import bootstrap_fd, bootstrap_mean
from histosynth.evaluate.config import EvaluateConfig
from histosynth.evaluate.features import Features
from histosynth.evaluate.kid import kid
from histosynth.evaluate.prdc import prdc
from histosynth.evaluate.stats import frechet_distance, frechet_distance_features, prefer_features

__all__ = ["distribution_metrics", "fd_between"]


def fd_between(real: Features, fake: Features, root: np.ndarray | None = None) -> float:
    """FD by the cheaper exact route: from features when both sets are smaller than d, else from stats."""
    if prefer_features(len(real.features), len(fake.features), real.features.shape[1]):
        return frechet_distance_features(real.features, fake.features)
    return frechet_distance(real.stats, fake.stats, root)


def distribution_metrics(
    real: Features, fake: Features, cfg: EvaluateConfig, root: np.ndarray | None = None
) -> dict[str, Any]:
    """FD (with a bootstrap interval), KID, precision/recall/density/coverage (with intervals).

    Keys are metric names without the detector suffix; ``n_real``/``n_synthetic`` are the sample
    counts. Metrics that need more samples than there are (PRDC needs more than k per set) are
    left out rather than reported from too few points. ``root``: Σ_real^½, shared when one real
    set is compared with several synthetic ones.
    """
    out: dict[str, Any] = {"n_real": len(real.features), "n_synthetic": len(fake.features)}
    out["fd"] = fd_between(real, fake, root)
    if cfg.bootstrap > 0:
        lo, hi, _ = bootstrap_fd(
            real.features, fake.features, cfg.bootstrap, cfg.seed, cfg.ci_level, out["fd"]
        )
        out["fd_ci_low"], out["fd_ci_high"] = lo, hi
    mean, std, m = kid(real.features, fake.features, cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)
    out.update({"kid": mean, "kid_std": std, "kid_subset_size": m})
    if min(len(real.features), len(fake.features)) > cfg.prdc_k:
        p = prdc(real.features, fake.features, cfg.prdc_k)
        out.update(p.summary())
        if cfg.bootstrap > 0:
            per_sample = {
                "precision": p.fake_in_real, "recall": p.real_in_fake,
                "density": p.fake_ball_count / p.k, "coverage": p.real_covered,
            }  # fmt: skip
            for name, values in per_sample.items():
                lo, hi = bootstrap_mean(np.asarray(values, np.float64), cfg.bootstrap, cfg.seed, cfg.ci_level)
                out[f"{name}_ci_low"], out[f"{name}_ci_high"] = lo, hi
    return out
