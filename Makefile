# Two commands: `make run` (the whole system on http://localhost:4000) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/shared/requirements.txt | cksum | cut -d' ' -f1)
PORT   ?= 4000

.PHONY: run test install lint bench clean

$(STAMP): requirements-dev.txt layers/shared/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	PORT=$(PORT) $(BIN)/python -m offline

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/cfn-lint template.yaml
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.cold_init
	$(BIN)/python -m bench.preview
	$(BIN)/python -m bench.fanout

clean:
	rm -rf $(VENV) .local .pytest_cache
