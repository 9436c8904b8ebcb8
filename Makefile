# pathsynth developer tasks. `make test` is the README's test command and what CI runs.
PYTHON ?= python3

.PHONY: install test check format bench-ingest bench-faults bench-serve

install:
	$(PYTHON) -m pip install -e ".[dev]"

# Starts throwaway MariaDB and PostgreSQL servers when they are installed; their tests skip
# (visibly) otherwise, and fail under CI=true.
test:
	scripts/with-mariadb scripts/with-postgres $(PYTHON) -m pytest -q

check:
	ruff check src tests bench
	ruff format --check src tests bench
	mypy
	lint-imports

format:
	ruff format src tests bench
	ruff check --fix src tests bench

bench-ingest:
	scripts/with-mariadb $(PYTHON) bench/ingest.py

bench-faults:
	$(PYTHON) bench/faults.py

bench-serve:
	$(PYTHON) bench/serve.py
