# MaskNet: `make run` starts the site with the embedded defaults; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# what setup installs: the runtime plus the test, lint and benchmark tools; a production node may
# take the runtime alone (make setup REQUIREMENTS=requirements.txt)
REQUIREMENTS ?= requirements-dev.txt
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(basename $(notdir $(REQUIREMENTS)))-$(REQ_HASH)
HOST ?= 127.0.0.1
PORT ?= 8000
# the address the banner prints when serving on every interface: the first host DJANGO_ALLOWED_HOSTS
# names besides this machine's own names (this machine's first address printed there answered 400
# when those named it otherwise), this
# machine's first address for "*" or a ".domain" entry, and 127.0.0.1 without it (the development
# settings then answer this machine's own clients alone)
comma := ,
ALLOWED_FIRST := $(firstword $(filter-out localhost 127.0.0.1 [::1],$(subst $(comma), ,$(DJANGO_ALLOWED_HOSTS))))
ADDRESS_HERE = $(shell hostname -I 2>/dev/null | cut -d' ' -f1)
SHOWN := $(if $(filter 0.0.0.0,$(HOST)),$(if $(ALLOWED_FIRST),$(if $(filter * .%,$(ALLOWED_FIRST)),$(ADDRESS_HERE),$(ALLOWED_FIRST)),127.0.0.1),$(HOST))

.PHONY: setup installed run port-free worker beat test browser screenshots lint bench clean-models

# idempotent: reinstalls packages only when a requirements file changed; install_models
# returns at once when the converted models are up to date
setup: $(STAMP)
	@$(PY) manage.py install_models

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	@# a venv whose creation failed half-way (no ensurepip) has a python but no pip: made again
	@test -x $(VENV)/bin/pip || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQUIREMENTS)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# DEMO=1: demo data (admin login, paired-kiosk link, people, sample check-ins), printed before start.
# The same install step as the worker's (`installed`, below): `make -j2 run worker` then installs
# once, where `run: setup` beside it ran two pip installs into one virtualenv at the same time
# First, whether the server can listen on HOST:PORT (scripts/check_port.py, standard library only,
# so with the system's Python, before the install): Daphne's runserver, when it cannot, logs a
# "Listen failure" and stays running without serving; DEMO=1 would have set a new demo password
# under the site already running there; and a fresh checkout installed everything first.
ifneq ($(filter run,$(MAKECMDGOALS)),)
installed: port-free
endif
run: installed
	@# the embedded database holds every face template: this user's alone (a first migrate under the
	@# usual umask 022 left db.sqlite3 readable by everyone on the machine; one made so before is closed)
	@if [ -z "$$DATABASE_URL" ] && [ -f db.sqlite3 ]; then chmod go-rwx db.sqlite3; fi
	umask 077 && $(PY) manage.py migrate --noinput
	@if [ "$(DEMO)" = 1 ]; then $(PY) manage.py demo --base-url http://$(SHOWN):$(PORT); else \
	  echo "Admin: http://$(SHOWN):$(PORT)/admin/ (first: $(PY) manage.py createsuperuser, in another terminal)"; \
	  echo "Kiosk: http://$(SHOWN):$(PORT)/kiosk/ (pair it: $(PY) manage.py create_kiosk NAME --base-url" \
	       "http://$(SHOWN):$(PORT); make run DEMO=1 adds demo data and prints a demo admin login)"; fi
	@# --insecure: the static files also when a development copy serves other hosts with DJANGO_DEBUG=0
	umask 077 && $(PY) manage.py runserver --insecure $(HOST):$(PORT)

# a node set up with either requirements file (a production one: REQUIREMENTS=requirements.txt) as it
# is: the worker and beat targets install no packages when that install is current (the models
# only when they changed), and after a release the same requirements file again
# (decided by make itself, not a shell `if`: a recipe line naming $$(MAKE) runs even under
# `make -n`, which then installed the models, and a sub-make hidden behind a variable lost the
# jobserver of `make -j`)
INSTALLED_HERE := $(wildcard $(VENV)/.installed-*-$(REQ_HASH))
RUNTIME_ONLY := $(wildcard $(VENV)/.installed-requirements-????????????)
installed:
ifneq ($(INSTALLED_HERE),)
	@$(PY) manage.py install_models
else ifneq ($(RUNTIME_ONLY),)
	@$(MAKE) --no-print-directory setup REQUIREMENTS=requirements.txt
else
	@$(MAKE) --no-print-directory setup
endif

# the virtualenv's Python once there is one (a checkout set up with another PYTHON, e.g.
# python3.12, ran `make run` without python3.11 before the check moved here), else the system's
port-free:
	@py="$(PY)"; [ -x "$$py" ] || py="$(PYTHON)"; \
	  command -v "$$py" >/dev/null || { echo "$(PYTHON) is required"; exit 1; }; \
	  "$$py" scripts/check_port.py "$(HOST)" "$(PORT)"

# a Celery worker for index rebuilds (needs REDIS_URL; without it the site runs them itself)
worker: installed
	@test -n "$$REDIS_URL" || { echo "set REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run Celery workers"; exit 1; }
	$(VENV)/bin/celery -A masknet_site worker --loglevel INFO --concurrency 1

# the Celery beat scheduler (one per cluster, needs REDIS_URL): the daily retention purge
# (recognition.purge_expired). Without Celery, run `manage.py purge_expired` from cron instead.
beat: installed
	@test -n "$$REDIS_URL" || { echo "set REDIS_URL to run Celery beat (or run manage.py purge_expired from cron)"; exit 1; }
	@mkdir -p var
	$(VENV)/bin/celery -A masknet_site beat --loglevel INFO --schedule var/celerybeat-schedule

# the test settings whatever DJANGO_SETTINGS_MODULE says (a production node exports its own), and
# without REDIS_URL: an exported one (for `make worker`) would put the in-process tests' cache,
# channel layer and Celery broker on that Redis (the tests that need Redis start their own nodes)
# TEST_WORKERS processes (pytest-xdist), each running whole test modules (tests/conftest.py), then
# the reliability package alone: its cluster's load and fault timings are set for a machine that
# runs nothing else (beside another worker, a kiosk's greeting was once late). 1: one process, in
# collection order
TEST_WORKERS ?= 2
test: setup browser
ifeq ($(TEST_WORKERS),1)
	env -u REDIS_URL -u MASKNET_DESCRIPTOR $(PY) -m pytest --ds=masknet_site.settings.test
else
	env -u REDIS_URL -u MASKNET_DESCRIPTOR $(PY) -m pytest --ds=masknet_site.settings.test \
		-n $(TEST_WORKERS) --dist loadgroup --ignore=tests/reliability
	env -u REDIS_URL -u MASKNET_DESCRIPTOR $(PY) -m pytest --ds=masknet_site.settings.test tests/reliability
endif

# refresh docs/screenshots/ from the kiosk's end-to-end test (a plain test run writes them to a
# temporary folder)
screenshots: setup browser
	env -u REDIS_URL MASKNET_SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest --ds=masknet_site.settings.test \
		tests/recognition/test_kiosk_e2e.py -m e2e -q

# headless Chromium + chromedriver (Debian packages) for the kiosk's end-to-end test; installs only
# when missing, never fails (the test then skips and says why)
browser:
	@bash scripts/install_browser.sh

# speed figures for docs/performance.md: engine stages vs face_recognition, index search, kiosk load
# over real WebSockets to Daphne, enrollment throughput, all with the site's descriptor (MASKNET_DESCRIPTOR,
# sface when unset); writes bench/results/{speed-sface,kiosk,latest}.json
.PHONY: bench-speed soak
bench: bench-speed
bench-speed: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/speed.py $(SPEED_ARGS)
	$(PY) bench/kiosk.py $(KIOSK_ARGS)
	$(PY) bench/latest.py

# the kiosk load with an extra 2-minute 8-kiosk run (server RSS must stay flat), then the consumer
# fuzz with 10,000 hostile messages instead of CI's 300 (prints its time and heap figures)
# and the load test of issue 7 at full size: 20 kiosks for 60 s (CI: 20 s) on Daphne + Redis + PostgreSQL
soak: setup
	$(PY) bench/kiosk.py --soak 120 $(KIOSK_ARGS)
	$(PY) bench/latest.py
	MASKNET_FUZZ_MESSAGES=10000 $(PY) -m pytest --ds=masknet_site.settings.test -s -q tests/recognition/test_consumer_fuzz.py
	MASKNET_LOAD_KIOSKS=20 MASKNET_LOAD_SECONDS=60 $(PY) -m pytest --ds=masknet_site.settings.test -q -m reliability \
		tests/reliability/test_load.py

# accuracy figures for docs/accuracy.md (needs ../shared/data; installs the dlib baseline)
bench: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/accuracy.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-models:
	rm -rf models
