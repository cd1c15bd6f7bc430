# Veil: `make run` serves the demo on :8000, `make test` runs lint and the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The PostgreSQL + Redis pass of `make test` (pytest-django creates and drops test_<db> itself).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

# The French catalogue (locale/fr) is compiled on every install, run and test: committed .mo files serve a machine
# without gettext (the compose image), and tests/test_french.py fails when they lag behind the .po files.
.PHONY: run install install-dev messages migrate seed serve stack test test-sqlite test-services lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@ $(VENV)/.installed

messages: $(VENV)/.installed
	@if command -v msgfmt >/dev/null 2>&1; then $(BIN)/python manage.py compilemessages --ignore=.venv -v 0; \
	else echo "gettext (msgfmt) is not installed: using the committed locale/*/LC_MESSAGES/*.mo"; fi

install: $(VENV)/.installed messages
install-dev: $(VENV)/.installed-dev messages

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/daphne -b $(HOST) -p $(PORT) config.asgi:application

# The demo feed tops the demo queues up with synthetic items while the server runs, and stops with it.
run: seed
	@$(BIN)/python manage.py demo_feed & feed=$$!; trap 'kill $$feed 2>/dev/null' EXIT INT TERM; \
		$(MAKE) --no-print-directory serve

# The real stack without docker: PostgreSQL and Redis (found or started), one web process per core on one socket,
# a Celery worker and beat. DATABASE_URL / REDIS_URL / VEIL_WEB_PROCESSES choose; see config/stack.py.
stack: install
	$(BIN)/python -m config.stack --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	@# Every model change has its migration.
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py makemigrations --check --dry-run

test-sqlite: install-dev
	@echo "== pytest on SQLite, in-memory channel layer, eager Celery"
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest $(PYTEST_ARGS)

test-services: install-dev
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(TEST_DATABASE_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== pytest on PostgreSQL + Redis (channels_redis, Celery broker)"; \
		DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS); \
	elif [ "$$VEIL_REQUIRE_SERVICES" = "1" ]; then \
		echo "PostgreSQL is not reachable at $(TEST_DATABASE_URL) and VEIL_REQUIRE_SERVICES=1"; exit 1; \
	else \
		echo "== PostgreSQL not reachable at $(TEST_DATABASE_URL): skipping the PostgreSQL + Redis pass"; \
	fi

test: lint test-sqlite test-services

bench: install-dev
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
