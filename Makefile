# Two commands do everything from a fresh clone: `make demo` and `make test`.
# Both create their own virtual environment in .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
FASHION_DIR := /usr/share/datasets/fashion-mnist
# Numba's compiled kernels are cached here so a second run starts fast.
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

.PHONY: setup data test demo bench clean gpu-check

setup: $(STAMP) data

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[all]'
	touch $(STAMP)

# Fashion-MNIST comes from Debian's package; nothing is downloaded at run time.
data:
	@if [ -d $(FASHION_DIR) ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null \
	  || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
	  || echo "warning: could not install dataset-fashion-mnist; tests on real data will skip"; \
	else echo "warning: no apt-get; install Fashion-MNIST IDX files under $(FASHION_DIR) or pass --data-dir"; fi

# One BLAS thread in tests: many small GEMMs with idle OpenBLAS threads spinning on 2 shared cores ran 3-5x slower.
test: setup
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider

demo: setup
	$(VENV)/bin/fdaref demo

# The CPU benchmarks behind the README's speed table, one after the other (each writes its JSON in
# bench/results/); the GPU ones run under gpu-check.
bench: setup
	OPENBLAS_NUM_THREADS=1 $(PY) bench/bench_reference.py
	$(PY) bench/bench_numba.py
	$(PY) bench/bench_torch.py --device cpu --threads 1 --steps 9
	$(PY) bench/bench_torch.py --device cpu --threads 2 --steps 9 --out bench/results/torch_cpu_2threads.json

# On a CUDA GPU machine, with what it has installed (torch, cupy, numba, hypothesis, pytest, matplotlib):
# every GPU check in at most 8 minutes, summary in $(GPU_CHECK_OUT)/gpu_check.json (bench/gpu_check.py).
GPU_CHECK_OUT ?= runs/gpu_check
gpu-check:
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PYTHON) bench/gpu_check.py --out $(GPU_CHECK_OUT) --data-dir $(FASHION_DIR)

clean:
	rm -rf $(VENV) .numba_cache runs build *.egg-info
