# The README's two commands: `make demo` (set up, run the pipeline) and `make test` (set up, run the tests).
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	PATH="$(CURDIR)/.venv/bin:$$PATH" MEMSKILL_PIPELINE_ID=$$(date +%Y%m%d-%H%M%S) .venv/bin/dvc repro

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check .

bench: setup
	for b in bench/*.py; do .venv/bin/python $$b || exit 1; done
