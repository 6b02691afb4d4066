# Two commands: `make demo` and `make test`. Both set up .venv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'  # the hub, every driver, SUMO and the test tools
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/zhongshu demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check zhongshu tests bench
	$(BIN)/mypy  # pyproject.toml: strict on policy, ledger, query, protocol; defaults elsewhere

bench: $(STAMP)
	$(BIN)/python bench/query_overhead.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/stream_ingest.py

clean:
	rm -rf $(VENV) demo-city .pytest_cache
