"""The `diplotag tag` job: read documents from files, folders, JSONL, CSV, TSV, Parquet, a Hugging
Face dataset saved to disk, or stdin; tag them in batches; write exactly one output record per
input record, in input order (JSONL, or Parquet through a JSONL sidecar).

Bad records become output records with an `error` field (or, with `strict`, stop the
job). Output is appended in whole records and flushed after every batch, so after a
crash `resume` checks the complete records already written against the inputs and carries
on after them. Under `accelerate launch` each process tags every N-th record into a shard
file of its own; the first process merges the shards back into input order.
"""
import base64
import csv
import datetime
import decimal
import html
import json
import math
import os
import shutil
import sys
import threading
import time
from itertools import islice
from pathlib import Path

from tqdm import tqdm

TEXT_SUFFIXES = {".txt", ".text", ".md"}


class BadRecord(dict):
    """An input that cannot be tagged; it is written out as it is, with its `error`. (A type of
    its own, so that an input record that happens to have an `error` field is still tagged.)"""


class Failed(BadRecord):
    """A good input that the model could not tag (a model or device error, not the input's fault)."""


def _error(rid, source, message, record=None, kind=BadRecord):
    out = {k: v for k, v in (record or {}).items() if k not in ("text", "spans")}
    return kind(out, id=str(rid), error=message, source=source)


def _jsonl_records(lines, name):
    """Records of JSONL lines (bytes or str; a line is cut at "\n" only, since JSON text may hold
    U+2028 and other characters that str.splitlines() breaks at)."""
    for lineno, line in enumerate(lines, 1):
        source = f"{name}:{lineno}"
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as err:
                yield _error(source, source, f"not UTF-8: {err.reason} at byte {err.start}")
                continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            yield _error(source, source, f"not JSON: {err.msg} (column {err.colno})")
            continue
        if not isinstance(obj, dict):
            yield _error(source, source, f"not a JSON object but {type(obj).__name__}")
            continue
        rid = obj.get("id", source)
        if "text" not in obj:
            yield _error(rid, source, "no 'text' field", obj)
        elif not isinstance(obj["text"], str):
            yield _error(rid, source, f"'text' is {type(obj['text']).__name__}, not a string", obj)
        elif not obj["text"].strip():
            yield _error(rid, source, "'text' is empty", obj)
        else:
            yield dict(obj, id=str(rid))


def _text_file(path: Path, rid: str):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        return _error(rid, str(path), f"not UTF-8 text: {err.reason} at byte {err.start}")
    if not text.strip():
        return _error(rid, str(path), "empty file")
    return {"id": rid, "text": text, "meta": {"source_file": str(path)}}


def read_inputs(paths, text_column="text", id_column="id"):
    """Input records, one per document, in order: `.txt` files, folders of them (sorted),
    `.jsonl` files of {"id", "text", …}, "-" for standard input (JSONL if it starts with "{",
    else one plain-text document), and tables — `.csv`, `.tsv`, `.parquet` files and folders
    written by `datasets.Dataset.save_to_disk` — whose `text_column` is the text, `id_column`
    the id (the row number, from 1, where there is none) and other columns go to `meta`.
    Tables are read a batch of rows at a time, so a collection of any size streams."""
    for arg in paths:
        if arg == "-":
            data = sys.stdin.read()
            if data.lstrip().startswith("{"):
                yield from _jsonl_records(data.split("\n"), "<stdin>")
            elif data.strip():
                yield {"id": "stdin", "text": data}
            else:
                yield _error("stdin", "<stdin>", "empty input")
            continue
        path = Path(arg)
        if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
            yield from _hf_dataset_records(path, text_column, id_column)
        elif path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file()):
                yield _text_file(f, str(f.relative_to(path)))
        elif not path.exists():
            raise FileNotFoundError(f"no such input: {arg}")
        elif path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            with open(path, "rb") as f:
                yield from _jsonl_records(f, str(path))
        elif path.suffix.lower() in DELIMITERS:
            yield from _csv_records(path, DELIMITERS[path.suffix.lower()], text_column, id_column)
        elif path.suffix.lower() in PARQUET_SUFFIXES:
            yield from _parquet_records(path, text_column, id_column)
        else:
            yield _text_file(path, path.name)


# ---- tables: CSV, TSV, Parquet, Hugging Face datasets --------------------------------------------

DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
TABLE_ROWS = 256  # rows read at a time from Parquet and Hugging Face datasets


def _jsonable(value):
    """A table cell as JSON can hold it (it goes into `meta`): dates as ISO 8601, decimals as
    numbers, bytes as text (base64 where not UTF-8), NaN as null."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):  # datetime.datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    return str(value)


def _row_id(row: dict, id_column: str, n: int) -> str:
    """A row's id: its `id_column` cell, or its number (from 1) where that is missing or empty."""
    rid = row.get(id_column)
    return str(n) if rid is None or (isinstance(rid, str) and not rid.strip()) else str(rid)


def _table_record(row: dict, n: int, name: str, text_column: str, id_column: str):
    """The input record of table row `n` (from 1) of `name`; a row without a usable text becomes
    an error record that names the file and the row."""
    rid = _row_id(row, id_column, n)
    meta = {}
    for k, v in row.items():
        if k == text_column or k == id_column:
            continue
        if k == "meta" and isinstance(v, dict):  # a corpus-style meta column: its keys, not one nested key
            meta.update(_jsonable(v))
        else:
            meta[k] = _jsonable(v)
    text, source, where = row.get(text_column), f"{name}:row {n}", f"({name}, row {n})"
    if text is None:
        return _error(rid, source, f"no '{text_column}' value {where}", {"meta": meta})
    if not isinstance(text, str):
        return _error(rid, source, f"'{text_column}' is {type(text).__name__}, not a string {where}", {"meta": meta})
    if not text.strip():
        return _error(rid, source, f"'{text_column}' is empty {where}", {"meta": meta})
    return {"id": rid, "text": text, "meta": meta}


def _need_column(name, columns, column, option):
    if column not in columns:
        raise ValueError(f"{name} has no column {column!r} (its columns: {', '.join(map(str, columns))}); "
                         f"name the text column with {option}")


def _csv_records(path: Path, delimiter: str, text_column: str, id_column: str):
    """Rows of a CSV or TSV file with a header line (quoted as Excel and pandas write them),
    read one at a time. Cells stay strings; a row that is not UTF-8 or has more cells than
    the header becomes an error record, and the run goes on."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a document may well exceed 128 KB
    name = str(path)
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        _need_column(name, header, text_column, "--text-column")
        for n, cells in enumerate(reader, 1):
            if not cells:  # a blank line
                continue
            row = dict(zip(header, cells))
            try:
                "".join(cells).encode("utf-8")
            except UnicodeEncodeError:  # undecodable bytes, kept as surrogates by `surrogateescape`
                rid = _row_id(row, id_column, n).encode("utf-8", "replace").decode("utf-8")
                yield _error(rid, f"{name}:row {n}", f"not UTF-8 text ({name}, row {n})")
                continue
            if len(cells) > len(header):
                yield _error(_row_id(row, id_column, n), f"{name}:row {n}",
                             f"{len(cells)} cells but {len(header)} columns in the header ({name}, row {n})")
                continue
            yield _table_record(row, n, name, text_column, id_column)


def _parquet_records(path: Path, text_column: str, id_column: str):
    import pyarrow.parquet as pq

    name = str(path)
    with pq.ParquetFile(path) as pf:
        _need_column(name, pf.schema_arrow.names, text_column, "--text-column")
        n = 0
        for batch in pf.iter_batches(batch_size=TABLE_ROWS):
            for row in batch.to_pylist():
                n += 1
                yield _table_record(row, n, name, text_column, id_column)


def _hf_dataset_records(path: Path, text_column: str, id_column: str):
    """Rows of a `datasets.Dataset` saved with `save_to_disk` (memory-mapped Arrow, read a batch
    at a time). A DatasetDict folder holds several splits: name one."""
    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        raise ValueError(f"{path} is a DatasetDict: give one split's folder, e.g. "
                         + ", ".join(str(path / s) for s in splits))
    from datasets import load_from_disk

    ds = load_from_disk(str(path))
    name = str(path)
    _need_column(name, ds.column_names, text_column, "--text-column")
    n = 0
    for table in ds.with_format("arrow").iter(batch_size=TABLE_ROWS):  # raw cells: no image decoding
        for row in table.to_pylist():
            n += 1
            yield _table_record(row, n, name, text_column, id_column)


def complete_records(path: Path) -> int:
    """Number of complete records in an output file; a torn last line (a crash mid-write) is cut off."""
    if not path.exists():
        return 0
    raw = path.read_bytes()
    keep = raw[: raw.rfind(b"\n") + 1]
    if len(keep) != len(raw):
        path.write_bytes(keep)
    return keep.count(b"\n")


def check_resume(path: Path, inputs) -> None:
    """Consume from `inputs` the records already written to `path`, checking that the ids agree
    in order: resuming after the inputs changed (a file added to a folder shifts every record
    after it) would silently pair records with the wrong documents."""
    def written_ids():
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    yield json.loads(line).get("id")
                except (json.JSONDecodeError, AttributeError):
                    raise ValueError(f"--resume: line {n} of {path} is not an output record") from None

    check_written_ids(written_ids(), inputs, path)


def check_written_ids(ids, inputs, where) -> int:
    """Consume one record of `inputs` per id already written (to `where`), checking they agree."""
    n = 0
    for n, written in enumerate(ids, 1):
        expected = next(inputs, None)
        if expected is None or expected["id"] != written:
            found = "nothing more" if expected is None else repr(expected["id"])
            raise ValueError(f"--resume: record {n} of {where} is {written!r} but the inputs now have {found} "
                             "there: the inputs changed since that run; restore them, or rerun without --resume")
    return n


def tag_batch(tagger, batch, strict=False):
    """Tag a batch; a document that makes the model fail becomes an error record, not a lost
    one (with `strict`, the failure stops the job)."""
    good = [r for r in batch if not isinstance(r, BadRecord)]
    try:
        tagged = iter(tagger.tag(good))
    except Exception:  # noqa: BLE001 - isolate the document at fault, keep the rest
        if strict:
            raise
        tagged = iter([_tag_one(tagger, r) for r in good])
    return [r if isinstance(r, BadRecord) else next(tagged) for r in batch]


def _tag_one(tagger, record):
    try:
        return tagger.tag([record])[0]
    except Exception as err:  # noqa: BLE001
        return _error(record["id"], record["id"], f"tagging failed: {err!r}", record, kind=Failed)


def run_tag_job(tagger, inputs, out_path, *, batch_docs=64, strict=False, resume=False, progress=True,
                rank=0, world=1) -> dict:
    """Tag `inputs` (an iterable of records) into the JSONL file `out_path`, every `world`-th
    record from `rank` on. Returns the counts of this run: records `resumed` (already written),
    `tagged` (of which `gated`: skipped by the relevance gate), `bad_input`, `failed` (model or
    device errors), and the `first_failure`."""
    to_stdout = str(out_path) == "-"
    out_path = Path(out_path)
    done = complete_records(out_path) if resume and not to_stdout else 0
    todo = islice(inputs, rank, None, world) if world > 1 else iter(inputs)
    if done:
        check_resume(out_path, todo)
    counts = {"resumed": done, "tagged": 0, "gated": 0, "bad_input": 0, "failed": 0, "first_failure": None}
    bar = tqdm(desc=f"tagging{f' [{rank}/{world}]' if world > 1 else ''}", unit="doc", initial=done,
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    out = sys.stdout if to_stdout else open(out_path, "a" if resume else "w", encoding="utf-8")
    with out:
        while batch := list(islice(todo, batch_docs)):
            bad = next((r for r in batch if isinstance(r, BadRecord)), None)
            if strict and bad:
                raise ValueError(f"{bad['source']}: {bad['id']}: {bad['error']}")
            for record in tag_batch(tagger, batch, strict):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                kind = "failed" if isinstance(record, Failed) else "bad_input" if isinstance(record, BadRecord) else "tagged"
                counts[kind] += 1
                counts["gated"] += kind == "tagged" and record.get("gated") is True
                if kind == "failed" and counts["first_failure"] is None:
                    counts["first_failure"] = f"{record['id']}: {record['error']}"
            out.flush()
            if not to_stdout:
                os.fsync(out.fileno())
            bar.update(len(batch))
    bar.close()
    return counts


def summary(counts: dict, where: str = "") -> str:
    """One line for stderr at the end of a job."""
    n = counts["resumed"] + counts["tagged"] + counts["bad_input"] + counts["failed"]
    line = (f"diplotag: {where}{n} record{'' if n == 1 else 's'}: " + (f"{counts['resumed']} already written, " if counts["resumed"] else "")
            + f"{counts['tagged']} tagged" + (f" ({counts['gated']} off-topic by the gate)" if counts.get("gated") else "")
            + f", {counts['bad_input']} bad input, {counts['failed']} failed")
    if counts["failed"]:
        line += f" (model or device errors; the first: {counts['first_failure']})"
    return line


def add_counts(all_counts: list[dict]) -> dict:
    total = {k: sum(c.get(k, 0) for c in all_counts) for k in ("resumed", "tagged", "gated", "bad_input", "failed")}
    total["first_failure"] = next((c["first_failure"] for c in all_counts if c["first_failure"]), None)
    return total


# ---- Parquet out -----------------------------------------------------------------------------
# A Parquet run writes its records to a JSONL sidecar exactly as a JSONL run does (whole records,
# flushed and synced after every batch), in a work folder beside the output, `OUT.partial/`; when
# every record is written, the sidecar is converted to Parquet a batch of rows at a time (a
# ParquetWriter, never the whole table in memory) into `OUT.tmp`, renamed to OUT. So `--resume`
# after kill -9 is the JSONL resume, and the file at OUT is always a finished one. Resuming onto
# a finished file whose inputs have grown moves it to `OUT.partial/head.parquet` and carries on
# after its rows. The work folder is the state: while it exists, it (not OUT) says what is
# written; it is renamed away in one step once OUT is complete.

PARQUET_ROWS = ("documents", "statements")
GATE_COLUMNS = ("gated", "gate_score")
PARQUET_CHUNK_ROWS, PARQUET_CHUNK_BYTES = 4096, 32 << 20  # rows per write, whichever comes first


def stance_labels(tagger):
    """The stance model's labels in its own order (None without a stance model)."""
    model = getattr(tagger, "stance_model", None)
    if model is None:
        return None
    names = {int(k): v for k, v in model.config.id2label.items()}
    return [names[i] for i in sorted(names)]


def statement_type(labels):
    """The Arrow type of one statement; `stance_scores` is a struct of the stance `labels`."""
    import pyarrow as pa

    fields = [("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()), ("stance", pa.string()),
              ("score", pa.float64())]
    if labels:
        fields.append(("stance_scores", pa.struct([(l, pa.float64()) for l in labels])))
    fields += [("holder", pa.string()), ("holder_score", pa.float64()), ("text", pa.string())]
    return pa.struct(fields)


def parquet_schema(rows: str, labels):
    """`documents`: one row per input record, its statements nested in `spans`, `meta` as a JSON
    string. `statements`: one row per statement, with the document's `id` and the statement's
    number in it (`statement`); a document without statements, or a bad row (its `error` set),
    keeps one row whose statement fields are null, so that every input is accounted for."""
    import pyarrow as pa

    statement = statement_type(labels)
    # `gated`: null without the gate, else whether the gate skipped the document
    tail = [(GATE_COLUMNS[0], pa.bool_()), (GATE_COLUMNS[1], pa.float64()), ("error", pa.string()), ("source", pa.string())]
    if rows == "documents":
        return pa.schema([("id", pa.string()), ("text", pa.string()), ("meta", pa.string()),
                          ("spans", pa.list_(statement))] + tail)
    if rows == "statements":
        return pa.schema([("id", pa.string()), ("statement", pa.int32())] + [(f.name, f.type) for f in statement]
                         + tail)
    raise ValueError(f"--parquet-rows is documents or statements, not {rows!r}")


def _statement(span: dict, labels) -> dict:
    out = {k: span.get(k) for k in ("start", "end", "label", "stance", "score", "holder", "holder_score", "text")}
    if labels:
        scores = span.get("stance_scores")
        out["stance_scores"] = {l: scores.get(l) for l in labels} if scores else None
    return out


def record_rows(record: dict, rows: str, labels) -> list[dict]:
    """The Parquet rows of one output record (see `parquet_schema`)."""
    tagged = "spans" in record  # an input record may carry an `error` field of its own
    error, source = (None, None) if tagged else (record.get("error"), record.get("source"))
    rid = None if record.get("id") is None else str(record["id"])
    gate = {k: record.get(k) for k in GATE_COLUMNS} if tagged else {}
    if rows == "statements":
        spans = record["spans"] if tagged else []
        if not spans:
            return [{"id": rid, "statement": None, "error": error, "source": source, **gate}]
        return [dict(_statement(s, labels), id=rid, statement=i, **gate) for i, s in enumerate(spans)]
    core = {"id", "text", "meta", "spans"} | (set() if tagged else {"error", "source"}) | set(gate)
    extra = {k: v for k, v in record.items() if k not in core}
    meta = record.get("meta")
    if extra:  # other top-level fields of the input travel in meta
        meta = {**extra, **(meta if isinstance(meta, dict) else {} if meta is None else {"meta": meta})}
    return [{"id": rid, "text": record.get("text"), "meta": None if meta is None else json.dumps(meta, ensure_ascii=False),
             "spans": [_statement(s, labels) for s in record["spans"]] if tagged else None,
             "error": error, "source": source, **gate}]


def parquet_document_ids(path):
    """The ids of the documents in a Parquet output, in order (one per document, whichever rows)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        if "statement" in pf.schema_arrow.names:  # a document starts at its statement 0 or its null row
            for batch in pf.iter_batches(columns=["id", "statement"]):
                for rid, k in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                    if not k:
                        yield rid
        else:
            for batch in pf.iter_batches(columns=["id"]):
                yield from batch.column(0).to_pylist()


def _jsonl_file(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def write_parquet(records, out_path, schema, rows: str, labels, head=None) -> int:
    """Write output records (after the rows of the Parquet file `head`, if any) to `out_path`,
    a chunk of rows at a time; the file appears at `out_path` only when complete. Returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    n = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        if head is not None:
            with pq.ParquetFile(head) as pf:
                for batch in pf.iter_batches(batch_size=PARQUET_CHUNK_ROWS):
                    columns = [batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
                               for f in schema]  # a head written before the gate's columns gets them empty
                    writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
                    n += batch.num_rows
        chunk, size = [], 0
        for record in records:
            for row in record_rows(record, rows, labels):
                chunk.append(row)
                size += len(row.get("text") or "") + len(row.get("meta") or "")
            if len(chunk) >= PARQUET_CHUNK_ROWS or size >= PARQUET_CHUNK_BYTES:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                n, chunk, size = n + len(chunk), [], 0
        if chunk:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
            n += len(chunk)
    os.replace(tmp, out_path)
    return n


def _check_parquet_schema(path: Path, schema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    got = pq.read_schema(path)
    without_gate = pa.schema([f for f in schema if f.name not in GATE_COLUMNS])
    if not (got.equals(schema) or got.equals(without_gate)):  # a file from before the gate's columns resumes too
        rows = "statements" if "statement" in got.names else "documents"
        raise ValueError(f"--resume: {path} is not what this run writes (it has --parquet-rows {rows} rows, or "
                         "another model's stance labels): rerun with its settings, or without --resume")


def run_parquet_job(tagger, inputs, out_path, *, rows="documents", batch_docs=64, strict=False, resume=False,
                    progress=True) -> dict:
    """Tag `inputs` into the Parquet file `out_path`, one row per document or per statement
    (`rows`); the counts as `run_tag_job`'s. Streams: memory does not grow with the inputs."""
    out = Path(out_path)
    if out.is_dir():
        raise ValueError(f"{out} is a folder: give the Parquet file to write, e.g. {out / 'tagged.parquet'}")
    labels = stance_labels(tagger)
    schema = parquet_schema(rows, labels)
    work, trash = out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.done")
    head, sidecar = work / "head.parquet", work / "records.jsonl"
    if trash.exists():  # a finished run's work folder, left by a crash while it was being removed
        shutil.rmtree(trash)
    inputs = iter(inputs)
    done = 0
    if not resume:
        if work.exists():
            shutil.rmtree(work)
    elif work.exists():
        if head.exists():
            _check_parquet_schema(head, schema)
            done = check_written_ids(parquet_document_ids(head), inputs, out)
    elif out.exists():  # a finished run: check it against the inputs, then carry on after it
        _check_parquet_schema(out, schema)
        done = check_written_ids(parquet_document_ids(out), inputs, out)
        work.mkdir()
        os.replace(out, head)
    work.mkdir(parents=True, exist_ok=True)
    counts = run_tag_job(tagger, inputs, sidecar, batch_docs=batch_docs, strict=strict, resume=resume,
                         progress=progress)
    counts["resumed"] += done
    if head.exists() and sidecar.stat().st_size == 0:  # nothing new: the finished file as it was
        os.replace(head, out)
    else:
        write_parquet(_jsonl_file(sidecar), out, schema, rows, labels, head=head if head.exists() else None)
    os.replace(work, trash)  # one step: from here on, OUT is the run's state
    shutil.rmtree(trash)
    return counts


# ---- Hugging Face datasets -------------------------------------------------------------------


class DatasetTagger:
    """A `datasets.Dataset.map(batched=True)` function that adds each row's statements (a list of
    dicts: start, end, label, stance, score, stance_scores, holder, holder_score, text) in
    `column`, and in `column + "_error"` why a row could not be tagged (None when it was):

        fn = DatasetTagger(Tagger.from_pretrained("default"))
        ds = ds.map(fn, batched=True, batch_size=64, features=fn.features(ds.features))

    `datasets` fixes the new columns' types from the first batch written; where that batch may
    hold no statement or no error, pass `features=fn.features(ds.features)` as above (or use
    `tag_dataset`), or a later batch fails to cast."""

    def __init__(self, tagger, text_column="text", column="statements"):
        self.tagger, self.text_column, self.column = tagger, text_column, column
        self.labels = stance_labels(tagger)

    def __call__(self, batch):
        records = []
        for i, text in enumerate(batch[self.text_column]):
            if text is None:
                records.append(_error(i, f"row {i}", f"no '{self.text_column}' value"))
            elif not isinstance(text, str):
                records.append(_error(i, f"row {i}", f"'{self.text_column}' is {type(text).__name__}, not a string"))
            elif not text.strip():
                records.append(_error(i, f"row {i}", f"'{self.text_column}' is empty"))
            else:
                records.append({"id": str(i), "text": text})
        tagged = tag_batch(self.tagger, records)
        return {self.column: [[_statement(s, self.labels) for s in r["spans"]] if "spans" in r else [] for r in tagged],
                f"{self.column}_error": [None if "spans" in r else r["error"] for r in tagged],
                f"{self.column}_gated": [r.get("gated") for r in tagged]}  # None without the gate

    def features(self, features=None):
        """`features` (the dataset's) with the columns this function adds."""
        import pyarrow as pa
        from datasets import Features

        new = Features.from_arrow_schema(pa.schema([(self.column, pa.list_(statement_type(self.labels))),
                                                    (f"{self.column}_error", pa.string()),
                                                    (f"{self.column}_gated", pa.bool_())]))
        return Features({**(features or {}), **new})


def tag_dataset(dataset, tagger, text_column="text", column="statements", batch_size=64, **map_kwargs):
    """`dataset` (a `datasets.Dataset` or DatasetDict) with each row's statements added (`DatasetTagger`)."""
    fn = DatasetTagger(tagger, text_column, column)
    features = dataset.features if hasattr(dataset, "features") else next(iter(dataset.values())).features
    return dataset.map(fn, batched=True, batch_size=batch_size, features=fn.features(features), **map_kwargs)


# ---- shards ----------------------------------------------------------------------------------
# Each process of a sharded job keeps a status file beside its shard: a heartbeat while it runs,
# then its counts or its error. The first process reads these instead of waiting at a collective
# barrier, so a process that dies (an exception, kill -9, out of memory, a lost node) stops the
# job within `timeout` seconds instead of hanging it, and a slow shard never times out a healthy one.


class ShardsFailed(RuntimeError):
    pass


def status_path(shard: Path) -> Path:
    return shard.with_name(shard.name + ".status")


def _write_status(shard: Path, **status) -> None:
    tmp = shard.with_name(shard.name + ".status.tmp")
    tmp.write_text(json.dumps(status), encoding="utf-8")
    os.replace(tmp, status_path(shard))  # readers never see half a file


def shard_heartbeat(shard: Path, every: float = 2.0):
    """Beat in the shard's status file while this process lives (a daemon thread, gone with the
    process). Returns `finish(**status)`, which stops the beat and writes the final status."""
    stop = threading.Event()

    def beat():
        n = 0
        while True:
            _write_status(shard, beat=n)
            n += 1
            if stop.wait(every):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()

    def finish(**status):
        stop.set()
        thread.join()
        _write_status(shard, **status)

    return finish


def wait_for_shards(shards: list[Path], timeout: float = 60.0, poll: float = 0.5) -> list[dict]:
    """The counts of every shard once all have finished. Raises ShardsFailed as soon as one
    reports an error, or when one's status has not changed for `timeout` seconds."""
    seen = {s: (None, time.monotonic()) for s in shards}
    while True:
        statuses = {}
        for s in shards:
            try:
                status = json.loads(status_path(s).read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError):
                status = None
            if status and "error" in status:
                raise ShardsFailed(f"{s}: its process failed: {status['error']}")
            statuses[s] = status
            if status != seen[s][0]:
                seen[s] = (status, time.monotonic())
            elif not (status and "counts" in status) and time.monotonic() - seen[s][1] > timeout:
                raise ShardsFailed(f"{s}: its process stopped (no heartbeat for {timeout:g} s)")
        if all(st and "counts" in st for st in statuses.values()):
            return [statuses[s]["counts"] for s in shards]
        time.sleep(poll)


def merge_shards(shards: list[Path], out_path: Path) -> int:
    """Interleave shard files (record i lives in shard i % n) back into input order."""
    files = [open(s, encoding="utf-8") for s in shards]
    n = 0
    with open(out_path, "w", encoding="utf-8") as out:
        while line := files[n % len(files)].readline():
            out.write(line)
            n += 1
    left = [str(s) for s, f in zip(shards, files) if f.readline()]
    for f in files:
        f.close()
    if left:  # shard i holds record k*n+i: a shard that ends early means lost records
        raise ValueError(f"shards out of step after {n} records: {', '.join(left)} still hold records")
    return n


# ---- for people ------------------------------------------------------------------------------

COLOURS = {"EQUIPMENT_TRANSFER": "#7aecec", "FREEDOM_OF_NAVIGATION": "#feca74", "OPPOSITION_TO_COERCION": "#ff9561"}
STANCE_MARK = {"support": "＋", "oppose": "－", "neutral": "○", None: ""}


def render_html(records, title="diplotag") -> str:
    """One self-contained page: each article with its statements highlighted, displaCy style."""
    parts = []
    for r in records:
        if "spans" not in r:  # not tagged (an input record may carry an `error` field of its own)
            parts.append(f'<section><h2>{html.escape(r["id"])}</h2><p class="error">{html.escape(r["error"])}</p></section>')
            continue
        text, pos, body = r["text"], 0, []
        for s in sorted(r["spans"], key=lambda s: s["start"]):
            body.append(html.escape(text[pos:s["start"]]))
            tip = f'{s["label"]} {s.get("stance") or ""} (score {s.get("score", 1):.2f}) holder {s.get("holder") or "?"}'
            body.append(f'<mark style="background:{COLOURS.get(s["label"], "#ddd")}" title="{html.escape(tip)}">'
                        f'{html.escape(text[s["start"]:s["end"]])}<span class="tag">{s["label"]}'
                        f' · {s.get("stance") or "?"}' + (f' · {html.escape(s["holder"])}' if s.get("holder") else "")
                        + '</span></mark>')
            pos = s["end"]
        body.append(html.escape(text[pos:]))
        parts.append(f'<section><h2>{html.escape(str(r["id"]))}</h2><div class="doc">{"".join(body)}</div></section>')
    legend = " ".join(f'<mark style="background:{c}">{k}</mark>' for k, c in COLOURS.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 60em; margin: 2em auto; color: #222; }}
.doc {{ white-space: pre-wrap; line-height: 2.4; }}
mark {{ padding: 0.2em 0.35em; border-radius: 0.3em; }}
.tag {{ font-size: 0.62em; font-weight: bold; margin-left: 0.4em; text-transform: uppercase; vertical-align: middle; }}
.error {{ color: #b00; }}
section {{ border-bottom: 1px solid #ddd; padding-bottom: 1em; }}
</style></head>
<body><h1>{html.escape(title)}</h1><p>{legend}</p>
{"".join(parts)}
</body></html>
"""


def print_table(records, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="statements found", show_lines=False)
    for col in ("document", "label", "stance", "holder", "score", "statement"):
        table.add_column(col, overflow="fold")
    for r in records:
        if "spans" not in r:  # not tagged (an input record may carry an `error` field of its own)
            table.add_row(r["id"], "[red]error[/red]", "", "", "", r["error"])
        for s in r.get("spans", []):
            stance = f'{s.get("stance") or "?"} {max((s.get("stance_scores") or {}).values(), default=0):.2f}'
            holder = f'{s["holder"]} {s.get("holder_score") or 0:.2f}' if s.get("holder") else "?"
            table.add_row(str(r["id"]), s["label"], stance, holder, f'{s["score"]:.2f}', s["text"])
    Console(file=file or sys.stdout, width=160).print(table)
