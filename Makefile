# The two commands a newcomer needs: `make run` and `make test`. Only Python is required.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
SANDBOX_PORT ?= 8400

.PHONY: run demo test lint lock audit image bench bench-read-models bench-sweep clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies come from the lock files, exact versions with their hashes; the project itself
# is then installed without resolving anything again (--no-deps).
$(VENV)/.installed-run: pyproject.toml requirements/run.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/run.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.installed-run

# Regenerates both lock files from pyproject.toml (after adding or changing a dependency).
# The dev lock is constrained by the run lock, so the two never pin different versions.
PIP_COMPILE_OPTIONS := --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-find-links --no-emit-index-url $(LOCK_ARGS)
lock: $(VENV)/.installed-dev
	$(BIN)/pip-compile $(PIP_COMPILE_OPTIONS) --output-file requirements/run.txt pyproject.toml
	$(BIN)/pip-compile $(PIP_COMPILE_OPTIONS) --extra dev --constraint requirements/run.txt \
		--output-file requirements/dev.txt pyproject.toml

# Known vulnerabilities of every pinned package (pip-audit). An unreachable vulnerability
# service is reported, not failed; a vulnerability found fails (.ci/audit says how).
audit: $(VENV)/.installed-dev
	$(BIN)/python .ci/audit requirements/run.txt requirements/dev.txt

run: $(VENV)/.installed-run
	$(BIN)/invoice-ledger migrate
	$(BIN)/invoice-ledger serve --host $(HOST) --port $(PORT)

# The ledger beside the sandbox on a throwaway SQLite database under var/demo/, with invoices,
# a dead letter and a reconciliation; prints the URLs to open, stops both on Ctrl-C.
demo: $(VENV)/.installed-run
	$(BIN)/python -m demo --port $(PORT) --sandbox-port $(SANDBOX_PORT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check service tests bench demo migrations
	$(BIN)/ruff format --check service tests bench demo migrations
	$(BIN)/mypy

# The service image, built without a daemon (buildah, chroot isolation, vfs storage: what
# works as root without user namespaces). PYTHON_IMAGE overrides the base (see docs/deployment.md).
IMAGE ?= invoice-ledger:0.1.0
BUILDAH := buildah --storage-driver vfs
image:
	BUILDAH_ISOLATION=chroot $(BUILDAH) build --isolation chroot --layers --format docker \
		$(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) \
		$(if $(PIP_CERT),--volume $(PIP_CERT):/run/pip-ca.pem:ro --build-arg PIP_CERT=/run/pip-ca.pem) \
		-f deploy/Dockerfile -t $(IMAGE) .

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)

bench-read-models: $(VENV)/.installed-dev
	$(BIN)/python -m bench.read_models $(BENCH_ARGS)

bench-sweep: $(VENV)/.installed-dev
	$(BIN)/python -m bench.sweep $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
