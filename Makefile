# `make demo` and `make test` work on a fresh machine: the virtual environment is built
# here, with the frameworks pinned by constraints.txt (the local CPU torch wheel).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	# tf-keras needs the `tensorflow` distribution; tensorflow-cpu provides the same module.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt tf-keras
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/run_all.py

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	rm -f build/bench-summary.jsonl && mkdir -p build
	for script in benchmarks/bench_*.py; do NCRT_BENCH_SUMMARY=build/bench-summary.jsonl $(PY) $$script || exit 1; done
	$(PY) benchmarks/summary.py build/bench-summary.jsonl

clean:
	rm -rf $(VENV) build *.egg-info
