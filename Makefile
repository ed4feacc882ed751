# The two commands of the quick start: `make demo` and `make test`. Plain venv + pip.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: demo test lint bench bench-quick results results-domains clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install when the project's metadata changes (stamp per extra).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/histosynth demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest

# Every benchmark at full size (hours on 2 cores) or at small sizes (minutes; results/quick/).
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py --quick

# docs/results.md: the three conditioning variants with equal step budgets (about an hour on 2 cores).
results: $(VENV)/.installed
	$(BIN)/histosynth demo --out runs/results --set train_steps=3000 --set n_samples=128 \
		--set segmenter_steps=300 --set segmenter_seeds=3 \
		--set 'variants=["map","spatial","tokens"]' --set without_crops=false
	$(BIN)/python scripts/write_results.py runs/results

# docs/domains.md: simulated labs, crop adherence and transfer to a new lab (hours on 2 cores;
# resumable: re-running continues in runs/domains).
results-domains: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_domains.py --out benchmarks/results/bench_domains.json
	$(BIN)/python scripts/write_domains.py benchmarks/results/bench_domains.json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
