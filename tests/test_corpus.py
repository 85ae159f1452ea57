"""The committed corpus: compiled files in step with their sources, valid, and meeting the
size, balance and variety the project promises in its data card."""
import pytest

from diplotag.data.build import CORPUS_DIR, SPLITS, build_corpus
from diplotag.data.markup import FORMS, LABELS
from diplotag.data.schema import validate_jsonl
from diplotag.data.stats import corpus_stats, near_copies
from diplotag.model.base import default_token_counter


@pytest.fixture(scope="module")
def stats():
    return corpus_stats(count_tokens=default_token_counter())


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
    """Corpus v2 (issue 11): four times the text of v1."""
    docs = stats["documents"]
    assert sum(docs.values()) >= 1200 and docs["train"] >= 900 and docs["dev"] >= 120 and docs["test"] >= 180
    assert stats["train_tokens"] >= 350_000
    assert all(stats["spans_per_label"][lab] >= 1000 for lab in LABELS)


def test_density_and_length_like_real_news(stats):
    """Most news holds no statement: whole articles with none, few sentences with one."""
    no_statement = sum(stats["documents_without_statement"].values())
    assert no_statement >= 0.30 * sum(stats["documents"].values())
    words = stats["document_words"]
    assert words["min"] >= 80 and words["max"] <= 1500 and words["median"] >= 400


def test_few_sentences_carry_a_statement(stats):
    assert stats["sentences_without_statement"] >= 0.85 * stats["sentences"]


def test_stance_as_news_has_it(stats):
    total = sum(stats["stance"].values())
    share = {k: v / total for k, v in stats["stance"].items()}
    assert 0.55 <= share["support"] <= 0.65 and 0.25 <= share["oppose"] <= 0.32 and 0.08 <= share["neutral"] <= 0.15


def test_every_missed_form_is_in_train_forty_times(stats):
    assert all(stats["forms_in_train"][form] >= 40 for form in FORMS), stats["forms_in_train"]


def test_every_statement_has_a_holder_and_neutral_ones_mostly_none(stats):
    assert "?" not in stats["stance_by_holder"]
    nobody = stats["stance_by_holder"]["none"]
    assert nobody["neutral"] >= 0.8 * sum(nobody.values())


def test_negatives(stats):
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


def test_beat_articles_join_the_gate_data_as_relevant(tmp_path):
    """data/beat (held-out beat news in business register, annotated, not in the corpus): compiled to
    its own JSONL and into the gate's data as `relevant`, beside the corpus; an id used twice, in one
    split or across splits, is an error."""
    import json

    source = (CORPUS_DIR / "src" / "train" / "trade-001.txt").read_text(encoding="utf-8")
    offtopic = "id: off-1\ndate: 2020-01-01\nsource: paper\nvoice: wire\ntopic: sport\n---\nThe home side won 2-0 on Sunday.\n"
    dirs = {name: tmp_path / name for name in ("corpus", "beat", "offtopic", "gate")}

    def write(name, split, doc_id, text):
        folder = dirs[name] / "src" / split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{doc_id}.txt").write_text(text.replace("id: trade-001", f"id: {doc_id}").replace("id: off-1", f"id: {doc_id}"),
                                              encoding="utf-8")

    for split in SPLITS:
        write("corpus", split, f"trade-{split}", source)
        write("offtopic", split, f"off-{split}", offtopic)
    write("beat", "test", "beatcall-test", source)
    build = lambda **kw: build_corpus(dirs["corpus"], offtopic_dir=dirs["offtopic"], gate_dir=dirs["gate"], beat_dir=dirs["beat"], **kw)
    build()
    gate = [json.loads(line) for line in (dirs["gate"] / "test.jsonl").read_text().splitlines()]
    assert [(r["id"], r["label"]) for r in gate] == [("trade-test", "relevant"), ("beatcall-test", "relevant"), ("off-test", "offtopic")]
    beat = [json.loads(line) for line in (dirs["beat"] / "test.jsonl").read_text().splitlines()]
    assert [r["id"] for r in beat] == ["beatcall-test"] and beat[0]["spans"]
    assert not (dirs["beat"] / "dev.jsonl").exists()  # a split without beat sources gets no file
    build(check=True)
    # a compiled beat split whose sources are gone is stale; a build removes it
    (dirs["beat"] / "dev.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"beat/dev.jsonl \(no sources in .*beat/src/dev\)"):
        build(check=True)
    build()
    assert not (dirs["beat"] / "dev.jsonl").exists()
    # one id, one document: a beat article with a corpus document's id, an off-topic one with a beat
    # article's, a dev document with a train document's
    write("beat", "test", "trade-test", source)
    with pytest.raises(ValueError, match=r"beat/src/test/trade-test.txt: id 'trade-test' also in .*corpus/src/test/trade-test.txt"):
        build()
    (dirs["beat"] / "src" / "test" / "trade-test.txt").unlink()
    write("offtopic", "test", "beatcall-test", offtopic)
    with pytest.raises(ValueError, match=r"offtopic/src/test/beatcall-test.txt: id 'beatcall-test' also in .*beat/src/test/beatcall-test.txt"):
        build()
    (dirs["offtopic"] / "src" / "test" / "beatcall-test.txt").unlink()
    write("corpus", "dev", "trade-train", source)
    with pytest.raises(ValueError, match=r"corpus/src/dev/trade-train.txt: id 'trade-train' also in .*corpus/src/train/trade-train.txt"):
        build()


def test_second_annotations_still_score_to_the_committed_agreement():
    """Each agreement round's second annotations name corpus documents by id and must match their
    text: a renamed or edited document breaks the round (as renaming dev's mofa-034 did, until its
    second annotation was renamed with it), and the figures the data card shows must still follow."""
    import json

    from diplotag.data import agreement

    rounds, _ = agreement.score_rounds()
    assert rounds == json.loads((CORPUS_DIR / "agreement.json").read_text())["rounds"]
