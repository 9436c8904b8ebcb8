# pathsynth developer tasks. `make test` is the README's test command and what CI runs.
PYTHON ?= python3

.PHONY: install test check format bench-ingest

install:
	$(PYTHON) -m pip install -e ".[dev]"

# Starts a throwaway MariaDB server when mariadbd is installed; its tests skip (visibly) otherwise,
# and fail under CI=true.
test:
	scripts/with-mariadb $(PYTHON) -m pytest -q

check:
	ruff check src tests bench
	ruff format --check src tests bench
	mypy

format:
	ruff format src tests bench
	ruff check --fix src tests bench

bench-ingest:
	scripts/with-mariadb $(PYTHON) bench/ingest.py
