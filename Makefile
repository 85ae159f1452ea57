# Every target makes (or reuses) the virtual environment it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo models corpus bench eval
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: install
	$(PY) -m pytest -q

# Tag the seed article and the sample articles with the shipped default models: a table in the
# terminal and a page that highlights every statement (demo.html).
demo: install
	$(VENV)/bin/diplotag tag tests/fixtures/seed_article.txt data/samples --format table -q
	$(VENV)/bin/diplotag tag tests/fixtures/seed_article.txt data/samples --format html -o demo.html -q
	@echo "open demo.html in a browser to see the statements highlighted"

corpus: install
	$(VENV)/bin/diplotag data build
	$(VENV)/bin/diplotag data stats --write data/README.md

# The shipped default models: both trained from the committed corpus and configs, their
# LoRA adapters copied to model/default/ (a few MB in git), stamped with the data and config hashes.
models: install
	$(VENV)/bin/diplotag train all --ship

# The figures in README.md: test-split evaluation (model and baselines), re3d over three seeds,
# inference speed against transformers' pipeline; then the README table is regenerated.
eval: install
	$(VENV)/bin/diplotag eval --model default --data data/corpus/test.jsonl --out eval/results/test
	$(VENV)/bin/diplotag eval --readme

bench: install
	$(VENV)/bin/diplotag bench speed
	$(VENV)/bin/diplotag bench re3d --seeds 1 2 3
	$(VENV)/bin/diplotag eval --readme
