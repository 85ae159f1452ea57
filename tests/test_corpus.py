"""The committed corpus: compiled files in step with their sources, valid, and meeting the
size, balance and variety the project promises in its data card."""
import pytest

from diplotag.data.build import CORPUS_DIR, SPLITS, build_corpus
from diplotag.data.markup import LABELS
from diplotag.data.schema import validate_jsonl
from diplotag.data.stats import corpus_stats, near_copies


@pytest.fixture(scope="module")
def stats():
    return corpus_stats()


def test_compiled_splits_are_up_to_date_with_sources():
    build_corpus(check=True)


@pytest.mark.parametrize("split", SPLITS)
def test_split_is_valid(split):
    records, errors = validate_jsonl(CORPUS_DIR / f"{split}.jsonl")
    assert not errors and records


def test_no_near_copies_across_the_corpus(stats):
    assert stats["near_copies"] == [] and stats["max_5gram_jaccard"] < 0.5


def test_near_copy_check_flags_a_near_copy():
    a = {"id": "a", "text": "Japan will deliver two patrol vessels to the Philippine Coast Guard next year."}
    b = {"id": "b", "text": "Japan will deliver three patrol vessels to the Philippine Coast Guard next year."}
    c = {"id": "c", "text": "Beijing slammed the arms sale as a gross interference in its internal affairs."}
    assert [(x, y) for x, y, _ in near_copies([a, b, c])] == [("a", "b")]


def test_size(stats):
    docs = stats["documents"]
    assert docs["train"] >= 220 and docs["dev"] >= 40 and docs["test"] >= 60
    assert sum(stats["spans"].values()) >= 1600
    assert all(stats["spans_per_label"][lab] >= 400 for lab in LABELS)


def test_stance_balance(stats):
    for lab, counts in stats["stance_per_label"].items():
        total = sum(counts.values())
        assert counts["oppose"] >= 0.15 * total, lab
        assert counts["neutral"] >= 0.15 * total, lab


def test_negatives(stats):
    assert stats["sentences_without_statement"] >= 0.4 * stats["sentences"]
    assert all(n > 0 for n in stats["hard_negative_sentences"].values()), stats["hard_negative_sentences"]


def test_variety(stats):
    assert len(stats["actors"]) >= 30
    assert len(stats["equipment"]) >= 40
    assert len(stats["seas"]) >= 15
    years = [int(y) for y in stats["years"]]
    assert min(years) <= 2011 and max(years) >= 2025
    assert stats["sentence_words"]["min"] <= 6 and stats["sentence_words"]["max"] >= 50


def test_data_card_is_current(stats):
    from diplotag.data.stats import render_data_card

    assert (CORPUS_DIR.parent / "README.md").read_text(encoding="utf-8") == render_data_card(stats)
