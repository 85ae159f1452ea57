"""The corpus source form: one document per file, statements marked inline.

    id: wire-0001
    date: 2021-09-12
    source: wire service
    actors: Japan; Vietnam
    ---
    HANOI (Reuters) – Japan and Vietnam [[EQUIPMENT_TRANSFER/support: signed an
    agreement enabling the delivery of Japanese-made defence equipment]] on Saturday.

Header lines are `key: value` meta fields up to the `---` line; the body is
everything after it, less the file's final newline. `newline: crlf` in the header
stores the body with CRLF line ends, as some wires publish. Markup is
`[[LABEL/stance: statement]]`; the compiled text drops the brackets, the label and
the stance, and the span covers exactly the statement.

Only the standard library is used, so that corpus writers can check a file with
`python3 data/markup.py FILE…` before anything is installed.
"""
import re
import sys
from pathlib import Path

LABELS = ("EQUIPMENT_TRANSFER", "FREEDOM_OF_NAVIGATION", "OPPOSITION_TO_COERCION")
STANCES = ("support", "oppose", "neutral")
LIST_FIELDS = ("actors", "equipment", "seas")  # `;`-separated inventories for the data card

MARK = re.compile(r"\[\[([A-Z_]+)/([a-z]+): (.*?)\]\]", re.DOTALL)


class MarkupError(ValueError):
    pass


def parse_source(source: str, path: str = "<source>") -> dict:
    """Compile one source document to a corpus record with exact char offsets."""
    head, sep, body = source.partition("\n---\n")
    if not sep:
        raise MarkupError(f"{path}: no '---' line between header and body")
    meta = {}
    for lineno, line in enumerate(head.splitlines(), 1):
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise MarkupError(f"{path}:{lineno}: header line is not 'key: value': {line!r}")
        value = value.strip()
        meta[key.strip()] = [v.strip() for v in value.split(";") if v.strip()] if key.strip() in LIST_FIELDS else value
    doc_id = meta.pop("id", None)
    if not doc_id:
        raise MarkupError(f"{path}: header has no 'id'")
    body = body[:-1] if body.endswith("\n") else body
    if meta.pop("newline", "lf") == "crlf":
        body = body.replace("\n", "\r\n")
    body_line0 = head.count("\n") + 3  # 1-based file line where the body starts

    text, spans, pos = [], [], 0
    for m in MARK.finditer(body):
        label, stance, content = m.groups()
        where = f"{path}:{body_line0 + body.count(chr(10), 0, m.start())}"
        if label not in LABELS:
            raise MarkupError(f"{where}: unknown label {label!r} (one of {', '.join(LABELS)})")
        if stance not in STANCES:
            raise MarkupError(f"{where}: unknown stance {stance!r} (one of {', '.join(STANCES)})")
        if "[[" in content:
            raise MarkupError(f"{where}: '[[' inside a statement: markup does not nest")
        if content != content.strip() or not content:
            raise MarkupError(f"{where}: statement {content!r} is empty or has white space at an edge")
        text.append(body[pos:m.start()])
        start = sum(map(len, text))
        text.append(content)
        spans.append({"start": start, "end": start + len(content), "label": label, "stance": stance})
        pos = m.end()
    text.append(body[pos:])
    text = "".join(text)
    for token in ("[[", "]]"):
        if token in text:
            line = body_line0 + body[: body.find(token)].count("\n") if token in body else body_line0
            raise MarkupError(f"{path}:{line}: stray {token!r} (malformed markup?)")
    return {"id": doc_id, "text": text, "meta": meta, "spans": spans}


def load_source_file(path: Path) -> dict:
    return parse_source(Path(path).read_text(encoding="utf-8"), str(path))


if __name__ == "__main__":
    # Stand-alone check for corpus writers: parse each file and print a summary.
    failed = False
    for arg in sys.argv[1:]:
        try:
            rec = load_source_file(Path(arg))
        except (MarkupError, UnicodeDecodeError) as err:
            print(f"ERROR {err}")
            failed = True
            continue
        sentences = max(1, len(re.findall(r"[.!?][”\"’']?(\s|$)", rec["text"])))
        counts = {lab: sum(s["label"] == lab for s in rec["spans"]) for lab in LABELS}
        print(f"ok {arg}: {len(rec['text'].split())} words, ~{sentences} sentences, "
              f"{len(rec['spans'])} spans {counts}")
    sys.exit(1 if failed else 0)
