"""The formats collections come in (CSV, TSV, Parquet, a Hugging Face dataset saved to disk) and
Parquet out (a row per document or per statement), with tiny random models: ids, meta and
in-band errors naming the file and row; Parquet resumes after kill -9 and onto a finished file;
a 100,000-row Parquet file tagged in flat memory; the `datasets.Dataset.map` function."""
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from diplotag.cli import main
from diplotag.model.batch import DatasetTagger, read_inputs, run_parquet_job, tag_dataset
from diplotag.model.tagger import Tagger


def read_jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def tag_jsonl(tmp_path, tiny_models, *inputs, extra=()):
    out = tmp_path / "out.jsonl"
    assert main(["tag", *map(str, inputs), "-o", str(out), "--model", str(tiny_models), "-q", *extra]) == 0
    return read_jsonl(out)


def test_csv_and_tsv_rows_become_records_with_meta_and_in_band_errors(tmp_path, tiny_models):
    csv_file = tmp_path / "news.csv"
    csv_file.write_bytes(
        b'id,text,date,outlet\r\n'
        b'a1,"Japan will sell two radars to Manila, officials said.",2024-03-05,Kyodo\r\n'
        b',"A quoted ""word"" and a\nsecond line.",2024-03-06,AFP\r\n'       # no id: the row number
        b'a3,   ,2024-03-07,AP\r\n'                                            # empty text
        b'a4,Bad \xff byte here.,2024-03-08,AP\r\n'                           # not UTF-8
        b'a5,too,many,cells,here\r\n'
        b'a6,Short row\r\n'                                                    # missing cells: meta without them
    )
    tsv_file = tmp_path / "news.tsv"
    tsv_file.write_text("doc\tbody\tlang\nt1\tTokyo pledged patrol boats to Hanoi.\ten\nt2\t\tfr\n", encoding="utf-8")
    rows = tag_jsonl(tmp_path, tiny_models, csv_file)
    assert [r["id"] for r in rows] == ["a1", "2", "a3", "a4", "a5", "a6"]
    assert rows[0]["meta"] == {"date": "2024-03-05", "outlet": "Kyodo"} and rows[0]["spans"]
    assert rows[1]["text"] == 'A quoted "word" and a\nsecond line.'
    assert rows[5]["meta"] == {} and rows[5]["text"] == "Short row"
    errors = {r["id"]: (r["error"], r["source"]) for r in rows if "error" in r}
    assert errors == {
        "a3": (f"'text' is empty ({csv_file}, row 3)", f"{csv_file}:row 3"),
        "a4": (f"not UTF-8 text ({csv_file}, row 4)", f"{csv_file}:row 4"),
        "a5": (f"5 cells but 4 columns in the header ({csv_file}, row 5)", f"{csv_file}:row 5"),
    }
    assert rows[2]["meta"] == {"date": "2024-03-07", "outlet": "AP"}  # a bad row keeps its meta

    rows = tag_jsonl(tmp_path, tiny_models, tsv_file, extra=["--text-column", "body", "--id-column", "doc"])
    assert [r["id"] for r in rows] == ["t1", "t2"] and rows[0]["meta"] == {"lang": "en"} and rows[0]["spans"]
    assert rows[1]["error"] == f"'body' is empty ({tsv_file}, row 2)"


def test_parquet_and_saved_datasets_stream_in_with_typed_cells(tmp_path, tiny_models, capsys):
    import datetime

    import datasets

    table = pa.table({
        "text": ["Japan will sell two radars to Manila.", None, "  ", "Beijing slammed the arms sale."],
        "n": [1, 2, 3, 4],
        "published": pa.array([datetime.datetime(2024, 3, 5, 9, 30), None, None, None], pa.timestamp("s")),
        "score": [0.5, float("nan"), 1.0, 2.0],
        "meta": [{"outlet": "Kyodo"}, None, None, None],
    })
    pq.write_table(table, tmp_path / "news.parquet", row_group_size=2)
    pq.write_table(pa.table({"text": [7, None], "id": ["x", "y"]}), tmp_path / "ints.parquet")
    ds_dir = tmp_path / "hf"
    datasets.Dataset.from_dict({"content": ["Tokyo pledged boats to Hanoi.", ""], "uid": [10, 11]}).save_to_disk(ds_dir)
    rows = tag_jsonl(tmp_path, tiny_models, tmp_path / "news.parquet", tmp_path / "ints.parquet")
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "x", "y"]
    assert rows[0]["meta"] == {"n": 1, "published": "2024-03-05T09:30:00", "score": 0.5, "outlet": "Kyodo"}
    assert rows[1]["meta"]["score"] is None  # NaN is no JSON
    news, ints = tmp_path / "news.parquet", tmp_path / "ints.parquet"
    assert {r["id"]: r["error"] for r in rows if "error" in r} == {
        "2": f"no 'text' value ({news}, row 2)", "3": f"'text' is empty ({news}, row 3)",
        "x": f"'text' is int, not a string ({ints}, row 1)", "y": f"no 'text' value ({ints}, row 2)"}

    rows = tag_jsonl(tmp_path, tiny_models, ds_dir, extra=["--text-column", "content", "--id-column", "uid"])
    assert [r["id"] for r in rows] == ["10", "11"] and rows[0]["spans"] and rows[0]["meta"] == {}
    assert rows[1]["error"] == f"'content' is empty ({ds_dir}, row 2)"

    # whole-file problems are the user's to fix: exit 2, saying what and where
    assert main(["tag", str(tmp_path / "news.parquet"), "--text-column", "body", "--model", str(tiny_models), "-q",
                 "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "has no column 'body' (its columns: text, n, published, score, meta)" in capsys.readouterr().err
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a b"]})}).save_to_disk(tmp_path / "dd")
    assert main(["tag", str(tmp_path / "dd"), "--model", str(tiny_models), "-q", "-o", str(tmp_path / "x.jsonl")]) == 2
    assert f"is a DatasetDict: give one split's folder, e.g. {tmp_path / 'dd' / 'train'}" in capsys.readouterr().err


def write_news(path, n, start=0, bad_every=7):
    """A CSV of short articles; every `bad_every`-th has no text."""
    words = "Japan will deliver two patrol vessels to Manila under the defence pact and officials said".split()
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,text,outlet\n")
        for i in range(start, start + n):
            text = "" if i % bad_every == 3 else " ".join(words[: 4 + (7 * i) % 12])
            f.write(f"doc-{i},{text},outlet-{i % 3}\n")
    return path


def test_parquet_output_matches_jsonl_by_document_and_by_statement(tmp_path, tiny_models):
    src = write_news(tmp_path / "news.csv", 30)
    records = tag_jsonl(tmp_path, tiny_models, src)
    docs, stmts = tmp_path / "docs.parquet", tmp_path / "stmts.parquet"
    base = ["tag", str(src), "--model", str(tiny_models), "-q"]
    assert main(base + ["-o", str(docs)]) == 0  # Parquet from the suffix, one row per document
    assert main(base + ["-o", str(stmts), "--format", "parquet", "--parquet-rows", "statements"]) == 0
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("*.tmp"))

    rows = pq.read_table(docs).to_pylist()
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    for row, rec in zip(rows, records):
        if "error" in rec:
            assert (row["error"], row["source"], row["spans"]) == (rec["error"], rec["source"], None)
        else:
            assert row["error"] is None and row["text"] == rec["text"] and json.loads(row["meta"]) == rec["meta"]
            assert row["spans"] == rec["spans"]

    rows = pq.read_table(stmts).to_pylist()
    want = []
    for rec in records:
        if "error" in rec:
            want.append((rec["id"], None, None, rec["error"]))
        for k, s in enumerate(rec.get("spans", [])):
            want.append((rec["id"], k, s, None))
    got = [(r["id"], r["statement"], None if r["statement"] is None else
            {k: r[k] for k in ("start", "end", "label", "stance", "score", "stance_scores", "holder", "holder_score", "text")},
            r["error"]) for r in rows]
    assert got == want
    for r, (_, _, s, _) in zip(rows, want):  # the statement's text is the document's, at its offsets
        if s:
            assert r["text"] == s["text"]


def _cli(*args):
    return [sys.executable, "-m", "diplotag.cli", *args]


@pytest.mark.parametrize("rows", ["documents", "statements"])
def test_parquet_resumes_after_kill_9_and_onto_a_finished_file(tmp_path, tiny_models, rows, capsys):
    first, more = write_news(tmp_path / "a.csv", 300), write_news(tmp_path / "b.csv", 40, start=300)
    ref, out = tmp_path / "ref.parquet", tmp_path / "out.parquet"
    args = ["--model", str(tiny_models), "-q", "--batch-docs", "2", "--parquet-rows", rows]
    assert main(["tag", str(first), str(more), "-o", str(ref), *args]) == 0
    want = pq.read_table(ref)

    proc = subprocess.Popen(_cli("tag", str(first), "-o", str(out), *args), env=dict(os.environ, HF_HUB_OFFLINE="1"))
    sidecar = tmp_path / "out.parquet.partial" / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not sidecar.exists() or sidecar.read_bytes().count(b"\n") < 20):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < sidecar.read_bytes().count(b"\n") < 300 and not out.exists(), "killed part-way"
    with open(sidecar, "a") as f:  # a record torn by the kill
        f.write('{"id": "doc-9999", "te')

    assert main(["tag", str(first), "-o", str(out), *args, "--resume"]) == 0
    assert not (tmp_path / "out.parquet.partial").exists()
    first_part = pq.read_table(out)
    assert first_part.equals(want.slice(0, first_part.num_rows))
    assert "300 records: " in capsys.readouterr().err

    before = out.read_bytes()  # resuming a finished run with the same inputs: nothing to do
    assert main(["tag", str(first), "-o", str(out), *args, "--resume"]) == 0
    assert out.read_bytes() == before and "300 already written, 0 tagged" in capsys.readouterr().err
    other = "documents" if rows == "statements" else "statements"  # a file written another way is refused
    assert main(["tag", str(first), "-o", str(out), *args, "--parquet-rows", other, "--resume"]) == 2
    assert f"it has --parquet-rows {rows} rows" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["tag", str(more), "-o", str(out), *args, "--resume"]) == 2  # other inputs are refused
    assert "inputs changed" in capsys.readouterr().err and out.read_bytes() == before

    # inputs that grew: the finished file is kept and the new documents follow it
    assert main(["tag", str(first), str(more), "-o", str(out), *args, "--resume"]) == 0
    assert pq.read_table(out).equals(want)
    assert "340 records: 300 already written, 34 tagged, 6 bad input" in capsys.readouterr().err
    assert not list(tmp_path.glob("out.parquet.*"))


def test_a_100k_row_parquet_file_is_tagged_in_flat_memory(tmp_path, tiny_models):
    """100,000 documents of a few words each, read and written a batch at a time: the process
    grows by a few MB (holding the input records alone would take about 140 MB, the outputs
    several times that). The tagger alone, on one thread: about 30 s on a busy 2-core CPU."""
    import threading

    import psutil
    import torch

    n = 100_000
    words = ["Japan", "sells", "radars", "to", "Manila", "today", "ships", "sail"]
    texts = [" ".join(words[(i + k) % 8] for k in range(2 + i % 4)) for i in range(n)]
    texts[12345] = ""
    src, out = tmp_path / "big.parquet", tmp_path / "big.tagged.parquet"
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(n)], "text": texts, "n": list(range(n))}), src,
                   row_group_size=10_000)
    del texts
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend with whatever else runs
    try:
        tagger = Tagger.from_pretrained(tiny_models / "tagger", device="cpu")  # no stance model: seconds, not minutes
        tagger.tag(["warm up the model and the tokenizer"] * 256)
        proc, pool = psutil.Process(), pa.default_memory_pool()
        base, arrow_before, growth, stop = proc.memory_info().rss, pool.max_memory(), [0], threading.Event()

        def watch():
            while not stop.wait(0.05):
                growth.append(proc.memory_info().rss - base)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        try:
            counts = run_parquet_job(tagger, read_inputs([str(src)]), out, rows="statements", batch_docs=256,
                                     progress=False)
        finally:
            stop.set()
            watcher.join()
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    assert counts["tagged"] == n - 1 and counts["bad_input"] == 1
    pf = pq.ParquetFile(out)
    assert pf.metadata.num_rows > n and pf.metadata.num_row_groups > 10  # written a chunk at a time
    first = pf.read_row_group(0).slice(0, 1).to_pylist()[0]
    assert first["id"] == "d0" and first["statement"] == 0 and "stance_scores" not in first
    peak = max(growth)
    assert peak < 64e6, f"the process grew by {peak / 1e6:.0f} MB"
    assert pool.max_memory() - arrow_before < 64e6, f"Arrow peaked at {pool.max_memory() / 1e6:.0f} MB"
    print(f"\n100k rows in {seconds:.0f} s; memory grew by at most {peak / 1e6:.1f} MB, Arrow's peak "
          f"{pool.max_memory() / 1e6:.1f} MB")


def test_datasets_map_adds_each_rows_statements(tiny_models):
    import datasets

    tagger = Tagger.from_pretrained(tiny_models, device="cpu")
    texts = ["Japan will sell two radars to Manila.", "", "Beijing slammed the arms sale.", None,
             "Tokyo pledged patrol boats to Hanoi.", "The navy sailed through the strait."]
    ds = datasets.Dataset.from_dict({"text": texts, "n": list(range(6))})
    fn = DatasetTagger(tagger)
    tagged = ds.map(fn, batched=True, batch_size=4)  # as a plain map function
    want = tagger.tag([t for t in texts if t and t.strip()])
    assert tagged.column_names == ["text", "n", "statements", "statements_error", "statements_gated"]
    assert set(tagged["statements_gated"]) == {None}  # no gate ran
    good = [r for r in tagged if r["statements_error"] is None]
    assert [r["n"] for r in good] == [0, 2, 4, 5]
    for row, rec in zip(good, want):
        assert [(s["start"], s["end"], s["label"], s["stance"], s["text"]) for s in row["statements"]] == \
               [(s["start"], s["end"], s["label"], s["stance"], s["text"]) for s in rec["spans"]]
        assert row["statements"][0]["stance_scores"] == rec["spans"][0]["stance_scores"]
    assert tagged[1]["statements"] == [] and tagged[1]["statements_error"] == "'text' is empty"
    assert tagged[3]["statements_error"] == "no 'text' value"

    # a first batch with no statement or error fixes no types when the features are given
    ds = datasets.Dataset.from_dict({"text": ["", "  "] + texts[:1] * 3})
    tagged = ds.map(fn, batched=True, batch_size=2, features=fn.features(ds.features))
    assert [len(r["statements"]) > 0 for r in tagged] == [False, False, True, True, True]
    splits = tag_dataset(datasets.DatasetDict({"train": ds, "test": ds.select([2])}), tagger, batch_size=2)
    assert splits["test"][0]["statements"] == tagged[2]["statements"]
