"""The studio: a local web page to paint a map, pick crops and generate, and a reader study.

- :mod:`~histosynth.studio.session` — the model, crop bank, held-out maps, request checks;
- :mod:`~histosynth.studio.jobs` — background generation, one job at a time, queued in order;
- :mod:`~histosynth.studio.uploads` — uploaded crops and painted maps, validated;
- :mod:`~histosynth.studio.reader_study` / :mod:`~histosynth.studio.scoring` — blinded
  real-vs-synthetic rating and its statistics;
- :mod:`~histosynth.studio.app` / :mod:`~histosynth.studio.server` — the FastAPI app on
  127.0.0.1 with its static page (``static/``, no external assets).

FastAPI and uvicorn are imported only by ``app``, ``routes_*`` and ``server``; the rest needs
numpy, PIL and pandas only.
"""
