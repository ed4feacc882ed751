"""Synthesis: the sample stage, large images, map sources, crop banks."""

# The sampler every synthesis entry point starts from (sample stage, large images, demo/run,
# studio): DPM-Solver++ on Karras noise levels, 20 steps as good as 40-80 (docs/model.md).
DEFAULT_SAMPLER = "dpm++-karras"
