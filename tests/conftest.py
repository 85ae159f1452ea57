import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def default_tokenizer():
    from transformers import AutoTokenizer

    from diplotag.model.base import resolve_base

    return AutoTokenizer.from_pretrained(resolve_base("default"))


@pytest.fixture(scope="session")
def seed_record():
    return json.loads((FIXTURES / "seed_article.gold.jsonl").read_text(encoding="utf-8"))
