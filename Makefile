# Two commands: `make run` (the whole system on http://localhost:4000) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/shared/requirements.txt | cksum | cut -d' ' -f1)
# aws-sam-cli pins versions that clash with the functions' own, so it has a venv of its own.
SAM_VENV  := $(VENV)/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(shell cat requirements-sam.txt | cksum | cut -d' ' -f1)
# Debian's Chromium renders /docs in the browser test.
CHROMIUM  := /usr/bin/chromium
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)
PORT   ?= 4000

.PHONY: run test install lint bench clean

$(STAMP): requirements-dev.txt layers/shared/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(SAM_STAMP): requirements-sam.txt $(STAMP)
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	rm -f $(SAM_VENV)/.installed-*
	touch $(SAM_STAMP)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

install: $(STAMP) $(SAM_STAMP) $(CHROMIUM)

run: $(STAMP)
	PORT=$(PORT) $(BIN)/python -m offline

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .local .pytest_cache .aws-sam
