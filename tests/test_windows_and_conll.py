"""Overlapping windows that disagree: each token takes the window where it has the most context.
The re3d reader on a small CoNLL file committed with the tests (re3d itself stays in ../shared)."""
import numpy as np
import pytest

from diplotag.data.align import merge_window_probs
from diplotag.data.convert import read_conll, write_conll

from conftest import FIXTURES

NER_SAMPLE = FIXTURES / "ner_sample.conll"


def one_hot(label, n, k=3):
    probs = np.zeros((n, k), dtype=np.float32)
    probs[:, label] = 1
    return probs


def test_each_token_takes_the_window_where_it_has_most_context():
    """Three windows over 14 tokens, each with [CLS] and [SEP] (token index -1), each voting for
    its own label everywhere. In an overlap, a token goes to the window where it sits farther
    from an edge; on a tie, to the first. "Last window wins" or "first window wins" fail here."""
    a = [-1, *range(0, 7), -1]       # tokens 0..6
    b = [-1, *range(4, 11), -1]      # tokens 4..10
    c = [-1, *range(9, 14), -1]      # tokens 9..13
    windows = [(a, one_hot(0, len(a))), (b, one_hot(1, len(b))), (c, one_hot(2, len(c)))]
    merged = merge_window_probs(14, windows)
    # context = distance to the nearer edge of the window's real tokens:
    # token 4: 2 in a, 0 in b -> a;  token 5: 1 and 1, a tie -> a;  token 6: 0 in a, 2 in b -> b;
    # token 9: 1 in b, 0 in c -> b;  token 10: 0 in b, 1 in c -> c
    assert merged.argmax(-1).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert np.allclose(merged.sum(-1), 1)  # every token got exactly one window's probabilities


def test_conll_reader_gives_one_record_per_sentence_with_exact_spans():
    records = read_conll(NER_SAMPLE)
    assert len(records) == 3
    assert [(records[0]["text"][s["start"]:s["end"]], s["label"]) for s in records[0]["spans"]] == [
        ("British", "Nationality"), ("Ministry of Defence", "Organisation"), ("two", "Quantity"),
        ("Type 26 frigates", "MilitaryPlatform"), ("March 2017", "Temporal")]
    assert [(records[1]["text"][s["start"]:s["end"]], s["label"]) for s in records[1]["spans"]] == [
        ("General Smith", "Person"), ("Brimstone missiles", "Weapon"), ("£ 40 million", "Money"),
        ("Riyadh", "Location")]
    # two entities of one type side by side stay two (B- then B-)
    assert [records[2]["text"][s["start"]:s["end"]] for s in records[2]["spans"]] == [
        "Resolution 2231", "France", "Germany", "NATO"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_conll_reads_and_writes_back_byte_for_byte(tmp_path, newline):
    original = tmp_path / "sample.conll"
    original.write_bytes(NER_SAMPLE.read_bytes().replace(b"\n", newline.encode()))
    back = tmp_path / "back.conll"
    write_conll(read_conll(original), back)
    assert back.read_bytes() == original.read_bytes()


def test_conll_reader_names_the_bad_line(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Japan\tB-Location\nsold\tX-Thing\n")
    with pytest.raises(ValueError, match=r"bad.conll:2: expected 'token<TAB>BIO-tag'"):
        read_conll(bad)


def test_re3d_scoring_reads_the_conll_tokens(monkeypatch):
    """`diplotag bench re3d` scores on the CoNLL file's own tokens: a tagger that returns the gold
    spans scores 1, one that misses an entity scores less on that entity's type."""
    from diplotag.eval import re3d
    from diplotag.model import tagger as tagger_module

    gold = read_conll(NER_SAMPLE)

    class Perfect:
        drop = None

        def find_spans(self, texts):
            assert texts == [r["text"] for r in gold]
            return [[s for s in r["spans"] if s["label"] != self.drop] for r in gold]

    monkeypatch.setattr(tagger_module.Tagger, "from_pretrained", classmethod(lambda cls, *a, **k: Perfect()))
    scores = re3d.score_on_conll("unused", NER_SAMPLE)
    assert scores["test_macro_f1"] == 1.0 and scores["test_micro_f1"] == 1.0
    Perfect.drop = "Weapon"
    scores = re3d.score_on_conll("unused", NER_SAMPLE)
    assert scores["test_micro_f1"] < 1.0 and "Weapon" in scores["report"]
