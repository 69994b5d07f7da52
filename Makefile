# Two commands matter: `make demo` and `make test`. Both start from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist: two workers; --dist loadgroup keeps each file's tests on one worker and every
# test on the full-mode cluster on one (tests/conftest.py), so one full cluster a session.
TEST_WORKERS ?= -n 2 --dist loadgroup
DEMO_DIR ?= /tmp/rloop-demo

.PHONY: venv lint generate test unit demo bench cluster-bins cluster-up cluster-down clean

# Three steps, each into a venv that holds only what it has asked for. torch first; then
# DeepSpeed without build isolation, since its sdist imports torch while building and with
# isolation would fetch a second torch (DESIGN.md section 7); then the rest, our package built
# in isolation. A build without isolation runs the egg_info writers of every package already
# in the venv: transformers' `kernels` registers one that imports huggingface_hub and httpx2,
# so a build beside a half-installed set failed (`No module named 'idna'`, CI of 5b9d3c3).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python torch==2.11.0 "setuptools>=77" wheel
	$(BIN)/uv pip install --python $(BIN)/python --no-build-isolation \
	  "$$($(BIN)/python hack/requirement.py deepspeed)"
	$(BIN)/uv pip install --python $(BIN)/python -e '.[operator,trainer,dev]'
	touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python hack/generate_api.py --check

# The CRD (and the chart's copy) from rloop_operator/api.py, the chart's RBAC rules for the
# children from the launcher registry.
generate: venv
	$(BIN)/python hack/generate_api.py

test: lint cluster-bins
	$(BIN)/python -m pytest $(TEST_WORKERS) $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

demo: venv
	$(BIN)/rloop demo --compare --workdir $(DEMO_DIR)

# --full: the full-mode tests (tests/integration/test_full_cluster.py) run in `make test` too.
cluster-bins: venv
	hack/cluster/build-bins.sh --full

# FULL=1: kube-scheduler, fake GPU nodes and the real controllers besides the control plane.
cluster-up: cluster-bins
	$(BIN)/python -m tests.cluster.devcluster up $(if $(FULL),--full)

cluster-down: venv
	$(BIN)/python -m tests.cluster.devcluster down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
