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


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, default_tokenizer):
    """Randomly initialised two-layer BERTs (the default tokenizer's vocabulary) in the layout
    `diplotag train all` writes: <dir>/tagger and <dir>/stance. For the machinery, not quality."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

    from diplotag.data.align import bio_labels
    from diplotag.data.markup import LABELS, STANCES

    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    small = dict(vocab_size=default_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=512)
    tags = bio_labels(LABELS)
    for name, cls, labels in (("tagger", BertForTokenClassification, tags),
                              ("stance", BertForSequenceClassification, list(STANCES))):
        config = BertConfig(**small, id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
        model = cls(config)
        if name == "tagger":  # bias towards B-/I- tags so that the random model finds spans
            model.classifier.bias.data[1:] += 2.0
        model.save_pretrained(root / name)
        default_tokenizer.save_pretrained(root / name)
    return root


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, default_tokenizer):
    """A randomly initialised two-layer BERT encoder with the default tokenizer: a base model
    for training tests that take seconds."""
    import torch
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_base")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=default_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)).save_pretrained(path)
    default_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, seed_record):
    """Train and dev files made from the seed article's sentences (enough to exercise training)."""
    import json

    path = tmp_path_factory.mktemp("small_corpus")
    text, spans = seed_record["text"], seed_record["spans"]
    records = []
    for k in range(12):  # shifted copies of the seed, so the data is not one record
        cut = [s for s in spans if s["start"] >= 40 * k]
        records.append({"id": f"s{k}", "text": text[40 * k:], "meta": {},
                        "spans": [dict(s, start=s["start"] - 40 * k, end=s["end"] - 40 * k) for s in cut]})
    for name, recs in (("train", records[:9]), ("dev", records[9:])):
        (path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path
