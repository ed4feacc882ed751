"""The note a time-budgeted run prints when its budget bought too few steps for tissue."""

from __future__ import annotations

from histosynth.pipeline.runner import few_steps_advice
from histosynth.train.config import TISSUE_STEPS


def test_enough_steps_or_unmeasured_backbone_gives_no_advice():
    speckle, _ = TISSUE_STEPS["cpu-tiny"]
    assert few_steps_advice("cpu-tiny", speckle, 0.4, 15, 1) is None
    assert few_steps_advice("test", 10, 0.4, 15, 1) is None


def test_advice_names_the_budget_that_reaches_tissue_at_this_step_time():
    # the demo on a 2-core AVX2 CPU (December 2026): 781 steps at 0.88 s in 15 min, one variant
    advice = few_steps_advice("cpu-tiny", 781, 0.88, 15, 1, bf16=False)
    assert advice is not None
    # 15 min + (3,000 - 781) steps x 0.88 s = 47.5 min, in whole 5 minutes: 50
    assert "--minutes 50 " in advice
    assert "781 training steps" in advice and "no native bf16" in advice
    # three variants share the budget: each needs its own steps
    three = few_steps_advice("cpu-tiny", 781, 0.88, 15, 3)
    assert "--minutes 115 " in three and "bf16" not in three
