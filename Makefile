# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# cocotune (editable) with every extra, each dependency at the exact version in
# constraints.txt (setup.cfg only states compatible ranges); nothing else is needed beyond
# Python 3.11 and a C compiler.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := cpu,mpi,plots,test,dev

.PHONY: all install constraints demo test test-fast bench composability asan proto proto-check fmt lint typecheck clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt --upgrade pip setuptools wheel

# Reinstall when the dependencies or their tested versions change. No build isolation: the
# build backend is the venv's setuptools, at its constrained version too.
$(STAMP): setup.cfg setup.py pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet --no-build-isolation -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# After changing a dependency: install it into .venv, then record the exact versions.
constraints: $(STAMP)
	sed -n '/^#/p' constraints.txt > constraints.txt.tmp
	$(PY) -m pip freeze --all --exclude-editable >> constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/frontend.py
	$(PY) benchmarks/sequitur.py
	$(PY) benchmarks/convert.py
	$(PY) benchmarks/gen.py
	$(PY) benchmarks/mpi_scaling.py
	$(MAKE) composability
	$(PY) benchmarks/cocogen.py

# The README's "Does it work?" section comes from one full run of this benchmark.
composability: $(STAMP)
	$(VENV)/bin/mpirun -n 2 $(PY) benchmarks/composability.py --work build/composability-work
	$(PY) scripts/readme_results.py

# The TFLite delegate's tests again, with the delegate built under AddressSanitizer (CI runs
# the same through tests/cocogen/test_delegate.py::test_asan_build).
asan: $(STAMP)
	COCOGEN_ASAN=1 LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0 $(PY) -m pytest -q -x -p no:cacheprovider --capture=sys \
	tests/cocogen/test_delegate.py -k "not asan"

# caffe_pb2.py and its type stub caffe_pb2.pyi are generated from proto/caffe.proto with
# grpcio-tools and committed; proto-check fails if either is stale.
proto: $(STAMP)
	$(PY) scripts/gen_caffe_pb2.py

proto-check: $(STAMP)
	$(PY) scripts/gen_caffe_pb2.py --check

fmt: $(STAMP)
	$(PY) -m black cocotune tests benchmarks scripts
	$(VENV)/bin/ruff check --fix cocotune tests benchmarks scripts

# CI runs this before the tests (.ci/run): formatting, ruff's checks and mypy on the library
# (settings of all three in pyproject.toml).
lint: $(STAMP)
	$(PY) -m black --check cocotune tests benchmarks scripts
	$(VENV)/bin/ruff check cocotune tests benchmarks scripts
	$(PY) -m mypy

# mypy alone (files and settings: [tool.mypy] in pyproject.toml).
typecheck: $(STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache demo-out
