import json
from pathlib import Path

import pytest

from diplotag.cli import main
from diplotag.data import convert
from diplotag.data.markup import MarkupError, parse_source
from diplotag.data.schema import load_corpus, validate_jsonl

from conftest import FIXTURES, SHARED

GOOD = {"id": "a", "text": "Japan delivered radars.", "spans": [
    {"start": 6, "end": 22, "label": "EQUIPMENT_TRANSFER", "stance": "support"}]}


def span(start, end, label="EQUIPMENT_TRANSFER", stance="support"):
    return {"start": start, "end": end, "label": label, "stance": stance}


BAD_LINES = {  # line → (record or raw line, the error it must produce)
    1: ('{"id": "x", "text": ', "bad JSON"),
    2: ({"id": "b", "spans": []}, "text: Field required"),
    3: ({"id": "c", "text": 42}, "text: Input should be a valid string"),
    4: (GOOD, "duplicate id"),
    5: ({"id": "e", "text": "short", "spans": [span(2, 60)]}, "offset out of range"),
    6: ({"id": "f", "text": "some text", "spans": [span(3, 3)]}, "empty span"),
    7: ({"id": "g", "text": "some text", "spans": [span(5, 2)]}, "inverted span"),
    8: ({"id": "h", "text": "some text", "spans": [span(4, 9)]}, "white space at a span edge"),
    9: ({"id": "i", "text": "some longer text", "spans": [span(0, 16), span(2, 4), span(5, 11)]}, "overlaps span 0"),
    10: ({"id": "j", "text": "some text", "spans": [span(0, 4, label="WEAPON")]}, "unknown label 'WEAPON'"),
    11: ({"id": "k", "text": "some text", "spans": [span(0, 4, stance="maybe")]}, "unknown stance 'maybe'"),
}


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(GOOD)] + [v if isinstance(v, str) else json.dumps(v) for v, _ in BAD_LINES.values()]
    path.write_text("\n".join(lines) + "\n")  # GOOD is line 1, so bad record k is on line k + 1
    return path


def test_validate_reports_every_error_with_file_line_and_id(bad_file):
    records, errors = validate_jsonl(bad_file)
    assert [r.id for r in records] == ["a"]
    for line, (value, message) in BAD_LINES.items():
        rid = value["id"] if isinstance(value, dict) else "?"
        prefix = f"{bad_file}:{line + 1}: {rid}: "
        assert any(e.startswith(prefix) and message in e for e in errors), (prefix, message, errors)
    assert len(errors) == len(BAD_LINES) + 1  # line 10 holds two overlaps, both reported


def test_validate_command_lists_all_and_fails(bad_file, capsys):
    assert main(["data", "validate", str(bad_file)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(BAD_LINES) + 1
    with pytest.raises(ValueError, match="12 errors"):
        load_corpus(bad_file)


def test_seed_fixture_is_valid():
    records, errors = validate_jsonl(FIXTURES / "seed_article.gold.jsonl")
    assert not errors and len(records[0].spans) == 5


def test_markup_compiles_to_exact_offsets():
    rec = parse_source("id: t1\nactors: Japan; Vietnam\nnewline: crlf\n---\nHead\nJapan [[EQUIPMENT_TRANSFER/support: "
                       "will hand over radars]].\n", "t1.txt")
    assert rec["text"] == "Head\r\nJapan will hand over radars."
    assert rec["meta"] == {"actors": ["Japan", "Vietnam"]}
    s = rec["spans"][0]
    assert rec["text"][s["start"]:s["end"]] == "will hand over radars"


@pytest.mark.parametrize("body,message", [
    ("[[WEAPON/support: x]]", "unknown label"),
    ("[[EQUIPMENT_TRANSFER/maybe: x]]", "unknown stance"),
    ("[[EQUIPMENT_TRANSFER/support:  x]]", "white space"),
    ("a ]] b", "stray"),
])
def test_markup_errors_name_the_line(body, message):
    with pytest.raises(MarkupError, match=message) as err:
        parse_source(f"id: t\n---\nline one\n{body}\n", "t.txt")
    assert "t.txt:4" in str(err.value)


@pytest.mark.skipif(not (SHARED / "benchmarks/re3d").exists(), reason="needs ../shared/benchmarks/re3d")
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_re3d_conll_round_trip_is_identical(tmp_path, split):
    original = SHARED / "benchmarks/re3d" / f"{split}.txt"
    assert main(["data", "convert", str(original), str(tmp_path / "c.jsonl")]) == 0
    records = load_corpus(tmp_path / "c.jsonl", labels=None, require_stance=False)
    assert len(records) == {"train": 574, "dev": 191, "test": 200}[split]
    assert main(["data", "convert", str(tmp_path / "c.jsonl"), str(tmp_path / "back.conll")]) == 0
    assert (tmp_path / "back.conll").read_bytes() == original.read_bytes()


def test_conll_export_of_corpus_records_splits_tokens_at_span_edges(tmp_path, seed_record):
    warnings = convert.write_conll([seed_record], tmp_path / "seed.conll")
    assert "stance" in warnings[0]
    back = convert.read_conll(tmp_path / "seed.conll")  # one record per sentence
    got = [r["text"][s["start"]:s["end"]] for r in back for s in r["spans"]]
    want = [seed_record["text"][s["start"]:s["end"]].split() for s in seed_record["spans"]]
    assert [g.split() for g in got] == want


@pytest.mark.parametrize("to,back", [(convert.to_label_studio, convert.from_label_studio),
                                     (convert.to_doccano, convert.from_doccano)])
def test_label_studio_and_doccano_round_trips_are_lossless(seed_record, to, back):
    rec = dict(seed_record, spans=[dict(s, score=0.9) if to is convert.to_label_studio else s
                                   for s in seed_record["spans"]])
    assert back(json.loads(json.dumps(to([rec])))) == [rec]


def test_label_studio_export_with_annotations_prefers_the_annotation(seed_record):
    task = convert.to_label_studio([seed_record])[0]
    task["annotations"] = [{"result": task["predictions"][0]["result"][:3]}]  # a corrected task
    rec = convert.from_label_studio([task])[0]
    assert rec["spans"] == [seed_record["spans"][0]]


@pytest.mark.parametrize("break_it", [lambda t: t["predictions"][0]["result"][0]["value"].pop("labels"),
                                      lambda t: t["predictions"][0]["result"][0]["value"].update(labels=[]),
                                      lambda t: t["predictions"][0]["result"].append("not a region"),
                                      lambda t: t["data"].pop("text")])
def test_malformed_label_studio_task_is_an_error_naming_the_task(seed_record, break_it):
    tasks = convert.to_label_studio([seed_record, dict(seed_record, id="second")])
    break_it(tasks[1])
    with pytest.raises(ValueError, match=r"export.json: task 1 "):
        convert.from_label_studio(tasks, "export.json")


@pytest.mark.parametrize("row", [["a list"], {"id": "x"}, {"id": "x", "text": "t", "label": [[0, "a"]]}])
def test_malformed_doccano_row_is_an_error_naming_the_row(row):
    with pytest.raises(ValueError, match=r"rows.jsonl: row 2"):
        convert.from_doccano([{"id": "ok", "text": "fine", "label": []}, row], "rows.jsonl")


def test_sentences_near_spans_give_the_same_stance_context_as_all_sentences():
    from diplotag.data.build import CORPUS_DIR
    from diplotag.data.sentences import sentence_bounds
    from diplotag.model.stance import stance_input

    for r in load_corpus(CORPUS_DIR / "dev.jsonl"):
        full = sentence_bounds(r["text"])
        near = sentence_bounds(r["text"], near=[(s["start"], s["end"]) for s in r["spans"]])
        assert len(near) <= len(full)
        for s in r["spans"]:
            args = (s["start"], s["end"], s["label"])
            assert stance_input(r["text"], near, *args) == stance_input(r["text"], full, *args)


def test_markup_carries_holder_and_forms():
    rec = parse_source("id: t2\n---\nBeijing [[EQUIPMENT_TRANSFER/oppose/China/anaphoric,evaluative: slammed the "
                       "decision]]; Japan [[EQUIPMENT_TRANSFER/support/Japan: will hand over radars]].\n", "t2.txt")
    a, b = rec["spans"]
    assert (a["holder"], a["forms"], b["holder"]) == ("China", ["anaphoric", "evaluative"], "Japan")
    assert "forms" not in b and rec["text"][a["start"]:a["end"]] == "slammed the decision"


@pytest.mark.parametrize("mark,message", [
    ("[[EQUIPMENT_TRANSFER/oppose/Beijing: slammed it]]", "unknown holder 'Beijing'"),
    ("[[EQUIPMENT_TRANSFER/oppose/China/sarcasm: slammed it]]", "unknown form"),
])
def test_markup_refuses_unknown_holders_and_forms(mark, message):
    with pytest.raises(MarkupError, match=message):
        parse_source(f"id: t\n---\n{mark}\n", "t.txt")


def test_corpus_records_need_a_known_holder():
    from diplotag.data.schema import parse_record

    record = {"id": "x", "text": "Japan will sell radars.", "spans": [
        {"start": 6, "end": 22, "label": "EQUIPMENT_TRANSFER", "stance": "support"}]}
    assert any("no holder" in e for e in parse_record(record, require_holder=True)[1])
    assert not parse_record(record)[1]  # predictions and older files may lack one
    record["spans"][0]["holder"] = "Nippon"
    assert any("unknown holder 'Nippon'" in e for e in parse_record(record)[1])


def test_guidelines_list_exactly_the_gazetteers_canonical_holders():
    import re

    from diplotag.data.markup import HOLDERS, load_gazetteer

    guidelines = (Path(__file__).resolve().parents[1] / "data" / "GUIDELINES.md").read_text(encoding="utf-8")
    listed = guidelines.split("Canonical names")[1].split("\n\n")[1]
    assert re.findall(r"`([^`]+)`", listed) == list(HOLDERS)
    gazetteer = load_gazetteer()
    assert "Beijing" in gazetteer["China"] and "the Kremlin" in gazetteer["Russia"]
