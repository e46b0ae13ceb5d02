# Two entry points do all the setup on a fresh machine: `make demo` and `make test`.
# A Python 3.12 interpreter: plain python3.12 if it runs, else pyenv's 3.12.1.
PY312 ?= $(shell python3.12 -c "" >/dev/null 2>&1 && echo python3.12 || echo "env PYENV_VERSION=3.12.1 python3.12")
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-gpu test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PY312) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tpjax.demo

test: $(STAMP)
	JAX_PLATFORMS=cpu $(PY) -m pytest -q -n 2 -p no:cacheprovider tests

# the long physics checks (-m slow), on the CPU
test-slow: $(STAMP)
	JAX_PLATFORMS=cpu $(PY) -m pytest -q -n 2 -p no:cacheprovider -m slow tests

# the GPU tests (-m gpu) on whatever jax sees (they skip without an NVIDIA GPU)
test-gpu: $(STAMP)
	XLA_PYTHON_CLIENT_PREALLOCATE=false $(PY) -m pytest -q -p no:cacheprovider -m gpu tests

# everything, slow and gpu included, on the default jax backend (a GPU when present)
test-all: $(STAMP)
	XLA_PYTHON_CLIENT_PREALLOCATE=false $(PY) -m pytest -q -n 2 -p no:cacheprovider -m '' tests

lint: $(STAMP)
	$(VENV)/bin/ruff check tpjax kernels tests benchmarks
	$(VENV)/bin/ruff format --check tpjax kernels tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_cpu.py

clean:
	rm -rf $(VENV) build dist *.egg-info
