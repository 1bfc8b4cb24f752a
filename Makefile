# MaskNet: `make run` starts the site with the embedded defaults; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test lint bench clean-models

# idempotent: reinstalls packages only when a requirements file changed; install_models
# returns at once when the converted models are up to date
setup: $(STAMP)
	@$(PY) manage.py install_models

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py runserver $(HOST):$(PORT)

test: setup
	$(PY) -m pytest

# accuracy figures for docs/accuracy.md (needs ../shared/data; installs the dlib baseline)
bench: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/accuracy.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-models:
	rm -rf models
