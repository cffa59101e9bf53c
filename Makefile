# The README's two commands: `make demo` (set up, run the main job) and `make test` (set up, run the tests).
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/memskill models check

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check .

bench: setup
	for b in bench/*.py; do .venv/bin/python $$b || exit 1; done
