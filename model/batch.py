"""The `diplotag tag` job: read documents from files, folders, JSONL or stdin; tag them in batches;
write exactly one output record per input record, in input order.

Bad records become output records with an `error` field (or, with `strict`, stop the
job). Output is appended in whole records and flushed after every batch, so after a
crash `resume` checks the complete records already written against the inputs and carries
on after them. Under `accelerate launch` each process tags every N-th record into a shard
file of its own; the first process merges the shards back into input order.
"""
import html
import json
import os
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


def read_inputs(paths):
    """Input records, one per document, in order: `.txt` files, folders of them (sorted),
    `.jsonl` files of {"id", "text", …}, or "-" for standard input (JSONL if it starts with
    "{", else one plain-text document)."""
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
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file()):
                yield _text_file(f, str(f.relative_to(path)))
        elif not path.exists():
            raise FileNotFoundError(f"no such input: {arg}")
        elif path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            with open(path, "rb") as f:
                yield from _jsonl_records(f, str(path))
        else:
            yield _text_file(path, path.name)


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
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                written = json.loads(line).get("id")
            except (json.JSONDecodeError, AttributeError):
                raise ValueError(f"--resume: line {n} of {path} is not an output record") from None
            expected = next(inputs, None)
            if expected is None or expected["id"] != written:
                found = "nothing more" if expected is None else repr(expected["id"])
                raise ValueError(f"--resume: record {n} of {path} is {written!r} but the inputs now have {found} "
                                 "there: the inputs changed since that run; restore them, or rerun without --resume")


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
    `tagged`, `bad_input`, `failed` (model or device errors), and the `first_failure`."""
    to_stdout = str(out_path) == "-"
    out_path = Path(out_path)
    done = complete_records(out_path) if resume and not to_stdout else 0
    todo = islice(inputs, rank, None, world) if world > 1 else iter(inputs)
    if done:
        check_resume(out_path, todo)
    counts = {"resumed": done, "tagged": 0, "bad_input": 0, "failed": 0, "first_failure": None}
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
            + f"{counts['tagged']} tagged, {counts['bad_input']} bad input, {counts['failed']} failed")
    if counts["failed"]:
        line += f" (model or device errors; the first: {counts['first_failure']})"
    return line


def add_counts(all_counts: list[dict]) -> dict:
    total = {k: sum(c[k] for c in all_counts) for k in ("resumed", "tagged", "bad_input", "failed")}
    total["first_failure"] = next((c["first_failure"] for c in all_counts if c["first_failure"]), None)
    return total


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
            tip = f'{s["label"]} {s.get("stance") or ""} (score {s.get("score", 1):.2f})'
            body.append(f'<mark style="background:{COLOURS.get(s["label"], "#ddd")}" title="{html.escape(tip)}">'
                        f'{html.escape(text[s["start"]:s["end"]])}<span class="tag">{s["label"]}'
                        f' · {s.get("stance") or "?"}</span></mark>')
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
    for col in ("document", "label", "stance", "score", "statement"):
        table.add_column(col, overflow="fold")
    for r in records:
        if "spans" not in r:  # not tagged (an input record may carry an `error` field of its own)
            table.add_row(r["id"], "[red]error[/red]", "", "", r["error"])
        for s in r.get("spans", []):
            stance = f'{s.get("stance") or "?"} {max((s.get("stance_scores") or {}).values(), default=0):.2f}'
            table.add_row(str(r["id"]), s["label"], stance, f'{s["score"]:.2f}', s["text"])
    Console(file=file or sys.stdout, width=160).print(table)
