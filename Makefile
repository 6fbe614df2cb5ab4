.PHONY: help install test lint bench demo

help:  ## this list
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install tailrace with its test tools
	pip install -e '.[test]'

test:  ## the whole test suite (as CI runs it, minus CI=true)
	python -m pytest

lint:  ## ruff and mypy
	ruff check src tests && ruff format --check src && mypy

demo:  ## the demo job on the embedded default
	tailrace demo

bench:  ## engine benchmarks against the peers (see bench/engine/README.md)
	python bench/engine/run.py
