# MaskNet: `make run` starts the site with the embedded defaults; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run worker test browser lint bench clean-models

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

# DEMO=1: demo data (admin login, paired-kiosk link, people, sample check-ins), printed before start
run: setup
	$(PY) manage.py migrate --noinput
	@if [ -n "$(DEMO)" ]; then $(PY) manage.py demo --base-url http://$(HOST):$(PORT); else \
	  echo "Kiosk: http://$(HOST):$(PORT)/kiosk/ (pair it: $(PY) manage.py create_kiosk NAME;" \
	       "make run DEMO=1 adds demo data and prints a demo admin login)"; fi
	$(PY) manage.py runserver $(HOST):$(PORT)

# a Celery worker for index rebuilds (needs REDIS_URL; without it the site runs them itself)
worker: setup
	@test -n "$$REDIS_URL" || { echo "set REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run Celery workers"; exit 1; }
	$(VENV)/bin/celery -A masknet_site worker --loglevel INFO --concurrency 1

test: setup browser
	$(PY) -m pytest

# headless Chromium + chromedriver (Debian packages) for the kiosk's end-to-end test; installs only
# when missing, never fails (the test then skips and says why)
browser:
	@bash scripts/install_browser.sh

# speed figures for docs/performance.md: engine stages vs face_recognition, index search, kiosk load
# over real WebSockets to Daphne, enrollment throughput; writes bench/results/{speed,kiosk,latest}.json
.PHONY: bench-speed soak
bench: bench-speed
bench-speed: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/speed.py $(SPEED_ARGS)
	$(PY) bench/kiosk.py $(KIOSK_ARGS)
	$(PY) bench/latest.py

# the kiosk load with an extra 2-minute 8-kiosk run (server RSS must stay flat)
soak: setup
	$(PY) bench/kiosk.py --soak 120 $(KIOSK_ARGS)
	$(PY) bench/latest.py

# accuracy figures for docs/accuracy.md (needs ../shared/data; installs the dlib baseline)
bench: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/accuracy.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-models:
	rm -rf models
