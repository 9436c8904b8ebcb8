# pathsynth developer tasks. `make test` is the README's test command and what CI runs.
PYTHON ?= python3

.PHONY: install test check docs format bench-ingest bench-faults bench-serve

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

# The documentation site (site/): fails on a broken link, a missing page or a bad anchor.
docs:
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

format:
	ruff format src tests bench
	ruff check --fix src tests bench

bench-ingest:
	scripts/with-mariadb $(PYTHON) bench/ingest.py

bench-faults:
	$(PYTHON) bench/faults.py

bench-serve:
	$(PYTHON) bench/serve.py
