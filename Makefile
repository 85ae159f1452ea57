# Every target makes (or reuses) the virtual environment it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo models corpus bench
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/diplotag data validate data/corpus/train.jsonl data/corpus/dev.jsonl data/corpus/test.jsonl
	$(VENV)/bin/diplotag data stats

corpus: install
	$(VENV)/bin/diplotag data build
	$(VENV)/bin/diplotag data stats --write data/README.md
