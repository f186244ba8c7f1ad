# Quick start: `make run` and `make test`. Everything is installed into .venv from requirements files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := app:create_app

.PHONY: run test lint format setup db worker web lab clean bench image-test image-lint wheelhouse lock

$(STAMP): requirements.txt requirements-dev.txt
	.ci/system-packages build
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/flask setup

## Start the web app, a real Celery worker and the demo lab on embedded defaults (Ctrl-C stops all).
run: setup
	$(BIN)/python -m app.devserver

## Lint, format check, the import contracts (pyproject.toml), then the whole test suite.
test: $(STAMP)
	.ci/system-packages test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/lab.py
	$(BIN)/python bench/remote.py
	@if [ -n "$$REDIS_URL" ]; then $(BIN)/python bench/floor.py; else echo "bench/floor.py needs REDIS_URL; not run"; fi

## The production image and compose stack, built and run on a Docker engine of its own, driven
## through the TLS proxy, checked, then torn down (docker/ci.sh; root). `image-lint`: hadolint only.
image-test: $(STAMP)
	docker/ci.sh

image-lint:
	docker/ci.sh lint

## Every file the lock files name, into docker/wheelhouse/, for a build with no package index:
## docker build --build-arg WHEELHOUSE=docker/wheelhouse . (README, "Docker").
WHEELHOUSE ?= docker/wheelhouse
wheelhouse:
	$(PYTHON) -m pip download --quiet --no-deps --require-hashes --dest $(WHEELHOUSE) \
	  -r requirements.lock -r docker/requirements-build.lock

## Regenerate requirements.lock (and the build lock) after changing requirements.txt: pip-tools.
lock:
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	  --output-file requirements.lock docker/requirements-lock.in
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	  --output-file docker/requirements-build.lock docker/requirements-build.txt

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
