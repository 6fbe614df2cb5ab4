.PHONY: help install test lint bench demo examples

help:  ## this list
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install tailrace with its test tools
	pip install -e '.[test]'

test:  ## the whole test suite (as CI runs it, minus CI=true)
	python -m pytest

examples:  ## run the examples (examples/*/run.sh) as their tests do
	python -m pytest tests/examples -n 0

lint:  ## ruff and mypy
	ruff check src tests && ruff format --check src && mypy

demo:  ## the demo job on the embedded default
	tailrace demo

bench:  ## every benchmark (engine with its peers, pipeline, streams, api); each writes RESULTS.md
	python bench/engine/run.py
	python bench/pipeline/run.py
	if [ -f bench/streams/run.py ]; then python bench/streams/run.py; \
	else python bench/streams/consumer.py --write && python bench/streams/outbox.py; fi
	python bench/api/run.py
