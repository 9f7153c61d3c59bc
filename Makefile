# neutrosim: `make demo` installs and runs the main job (the depletion experiment); `make test` installs test needs and runs the suite.
# `make test-fast`: the suite without the whole-model experiments, Dask, the browser and the notebooks (the quick loop).
# Each finds a Python >= 3.12 itself (or honours PYTHON=...), and works in ./.venv.
VENV ?= .venv
PY := $(VENV)/bin/python
SEED ?= 1

.PHONY: demo run test test-fast bench venv clean

$(PY):
	"$$(bash .ci/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)

# editable, so that the code that runs is the checkout's and manifests name its commit
demo: $(PY)
	$(PY) -m pip install --quiet -e .
	$(VENV)/bin/neutrosim deplete

run: $(PY)
	$(PY) -m pip install --quiet -e .
	$(VENV)/bin/neutrosim run --days 21 --seed $(SEED) --out runs/demo --overwrite

test: $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pytest -n 2 --durations=15

# -m replaces addopts' "not slow", so it is repeated here
test-fast: $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pytest -n 2 --durations=10 -m "not slow and not experiment and not dask and not browser and not notebooks"

bench: $(PY)
	$(PY) -m pip install --quiet -e .
	$(PY) benchmarks/bench_diffusion.py
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_command.py

clean:
	rm -rf $(VENV) runs build dist *.egg-info
