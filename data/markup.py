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
`[[LABEL/stance/Holder: statement]]`, or `[[LABEL/stance/Holder/form,form: statement]]`
to record which hard forms (FORMS below) the statement takes; the compiled text drops the
brackets and the fields, and the span covers exactly the statement. The holder is one
canonical name of `data/holders.tsv` or `none`; older markup without it still parses (the
corpus build then reports the missing holder).

Only the standard library is used, so that corpus writers can check a file with
`python3 data/markup.py FILE…` before anything is installed.
"""
import re
import sys
from pathlib import Path

LABELS = ("EQUIPMENT_TRANSFER", "FREEDOM_OF_NAVIGATION", "OPPOSITION_TO_COERCION")
STANCES = ("support", "oppose", "neutral")
LIST_FIELDS = ("actors", "equipment", "seas")  # `;`-separated inventories for the data card
# The statement forms the tagger missed on published news (corpus v2 asks for each in train).
FORMS = ("anaphoric", "evaluative", "recipient", "financing", "codev", "denial", "clause", "qa")
NO_HOLDER = "none"
HOLDERS_FILE = Path(__file__).resolve().parent / "holders.tsv"

MARK = re.compile(r"\[\[([A-Z_]+)/([a-z]+)(?:/([^/:\[\]\n]+))?(?:/([a-z,]+))?: (.*?)\]\]", re.DOTALL)


def load_gazetteer(path: Path = HOLDERS_FILE) -> dict[str, list[str]]:
    """Canonical holder name → its variants (demonyms, capitals as metonyms, ministries,
    leaders' titles), from the tab-separated gazetteer: `canonical<TAB>variant; variant`."""
    gazetteer = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, variants = line.partition("\t")
            gazetteer[name.strip()] = [v.strip() for v in variants.split(";") if v.strip()]
    return gazetteer


HOLDERS = (*load_gazetteer(), NO_HOLDER)


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
        label, stance, holder, forms, content = m.groups()
        where = f"{path}:{body_line0 + body.count(chr(10), 0, m.start())}"
        if label not in LABELS:
            raise MarkupError(f"{where}: unknown label {label!r} (one of {', '.join(LABELS)})")
        if stance not in STANCES:
            raise MarkupError(f"{where}: unknown stance {stance!r} (one of {', '.join(STANCES)})")
        if holder is not None and holder not in HOLDERS:
            raise MarkupError(f"{where}: unknown holder {holder!r} (a canonical name of {HOLDERS_FILE.name}, or 'none')")
        forms = forms.split(",") if forms else []
        if any(f not in FORMS for f in forms):
            raise MarkupError(f"{where}: unknown form in {','.join(forms)!r} (any of {', '.join(FORMS)})")
        if "[[" in content:
            raise MarkupError(f"{where}: '[[' inside a statement: markup does not nest")
        if content != content.strip() or not content:
            raise MarkupError(f"{where}: statement {content!r} is empty or has white space at an edge")
        text.append(body[pos:m.start()])
        start = sum(map(len, text))
        text.append(content)
        span = {"start": start, "end": start + len(content), "label": label, "stance": stance}
        if holder is not None:
            span["holder"] = holder
        if forms:
            span["forms"] = forms
        spans.append(span)
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


SENTENCE_END = re.compile(r"[.!?][”\"’')]*(?=\s|$)|\n")


def rough_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence bounds by punctuation and line breaks: the writers' quick check (the data card
    uses pysbd), close enough to watch a batch's statement density."""
    bounds, start = [], 0
    for m in SENTENCE_END.finditer(text):
        if text[start:m.end()].strip():
            bounds.append((start, m.end()))
        start = m.end()
    if text[start:].strip():
        bounds.append((start, len(text)))
    return bounds


def batch_summary(records: list[dict]) -> str:
    """What a writer checks a batch against (data/AUTHORING.md): length, density, stance mix,
    holders, forms."""
    words = sorted(len(r["text"].split()) for r in records)
    spans = [s for r in records for s in r["spans"]]
    sentences = with_statement = 0
    for r in records:
        for a, b in rough_sentences(r["text"]):
            sentences += 1
            with_statement += any(s["start"] < b and s["end"] > a for s in r["spans"])
    share = lambda n, d: f"{100 * n / max(1, d):.0f}%"
    stance = {st: share(sum(s["stance"] == st for s in spans), len(spans)) for st in STANCES}
    forms = {f: sum(f in s.get("forms", []) for s in spans) for f in FORMS}
    return (f"{len(records)} documents, {share(sum(not r['spans'] for r in records), len(records))} with no statement; "
            f"words min {words[0]} median {words[len(words) // 2]} max {words[-1]}; "
            f"{len(spans)} statements in {share(with_statement, sentences)} of {sentences} sentences; "
            f"stance {stance}; holder missing on {sum('holder' not in s for s in spans)}; forms {forms}")


if __name__ == "__main__":
    # Stand-alone check for corpus writers: parse each file, print a line for it and a summary.
    failed, records = False, []
    for arg in sys.argv[1:]:
        try:
            rec = load_source_file(Path(arg))
        except (MarkupError, UnicodeDecodeError) as err:
            print(f"ERROR {err}")
            failed = True
            continue
        records.append(rec)
        sentences = len(rough_sentences(rec["text"]))
        counts = {lab: sum(s["label"] == lab for s in rec["spans"]) for lab in LABELS}
        print(f"ok {arg}: {len(rec['text'].split())} words, ~{sentences} sentences, "
              f"{len(rec['spans'])} spans {counts}")
    if len(records) > 1:
        print("summary:", batch_summary(records))
    sys.exit(1 if failed else 0)
