"""The corpus record (ANNOTATION_GUIDELINES.md, "The file format") and its validation.

Validation never stops at the first problem: `validate_jsonl` reads the whole file
and returns every error, each naming file, line and record id.
"""
import json
from pathlib import Path
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from .markup import FORMS, HOLDERS, LABELS, STANCES

class Span(BaseModel):
    model_config = ConfigDict(extra="allow")  # predictions carry score, text, stance_scores
    start: StrictInt = Field(ge=0)
    end: StrictInt = Field(ge=0)
    label: StrictStr
    stance: StrictStr | None = None
    holder: StrictStr | None = None      # canonical name (data/holders.tsv) or "none"
    forms: list[StrictStr] | None = None  # the hard forms it takes (data/markup.py FORMS), corpus only


class Record(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: StrictStr = Field(min_length=1)
    text: StrictStr
    meta: dict = Field(default_factory=dict)
    spans: list[Span] = Field(default_factory=list)


def span_errors(record: Record, labels=LABELS, stances=STANCES, require_stance=True, require_holder=False) -> list[str]:
    """Errors that need the text: offsets in range, no empty/inverted spans, no white space at
    an edge, no overlaps, known label, stance and holder. `labels=None` accepts any label
    (generic corpora such as re3d's entity types); a holder is checked against the canonical
    list whenever labels are, and required with `require_holder` (the corpus splits)."""
    errors, text = [], record.text
    for i, s in enumerate(record.spans):
        where = f"span {i} [{s.start}:{s.end}]"
        if labels is not None and s.label not in labels:
            errors.append(f"{where}: unknown label {s.label!r}")
        if s.stance is None and require_stance:
            errors.append(f"{where}: no stance")
        elif s.stance is not None and s.stance not in stances:
            errors.append(f"{where}: unknown stance {s.stance!r}")
        if s.holder is None and require_holder:
            errors.append(f"{where}: no holder")
        elif s.holder is not None and labels is not None and s.holder not in HOLDERS:
            errors.append(f"{where}: unknown holder {s.holder!r} (a canonical name of data/holders.tsv, or 'none')")
        if s.forms and any(f not in FORMS for f in s.forms):
            errors.append(f"{where}: unknown form in {s.forms!r}")
        if s.end > len(text) or s.start > len(text):
            errors.append(f"{where}: offset out of range (text has {len(text)} characters)")
        elif s.end < s.start:
            errors.append(f"{where}: inverted span")
        elif s.end == s.start:
            errors.append(f"{where}: empty span")
        elif text[s.start:s.end] != text[s.start:s.end].strip():
            errors.append(f"{where}: white space at a span edge in {text[s.start:s.end]!r}")
    ordered = sorted(enumerate(record.spans), key=lambda p: (p[1].start, p[1].end))
    reach = None  # the span that reaches furthest so far: any later span starting before its end overlaps
    for j, b in ordered:
        if reach is not None and b.start < reach[1].end:
            i, a = reach
            errors.append(f"span {j} [{b.start}:{b.end}] overlaps span {i} [{a.start}:{a.end}]")
        if reach is None or b.end > reach[1].end:
            reach = (j, b)
    return errors


def _pydantic_messages(err: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in err.errors()]


def parse_record(obj, **kw) -> tuple[Record | None, list[str]]:
    """One decoded JSON value → (record or None, its errors)."""
    try:
        record = Record.model_validate(obj)
    except ValidationError as err:
        return None, _pydantic_messages(err)
    return record, span_errors(record, **kw)


def validate_jsonl(path, **kw) -> tuple[list[Record], list[str]]:
    """Read a corpus JSONL file: (valid records, every error as 'file:line: id: message')."""
    records, errors, seen = [], [], {}
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                errors.append(f"{path}:{lineno}: ?: bad JSON: {err.msg} (column {err.colno})")
                continue
            rid = obj.get("id", "?") if isinstance(obj, dict) else "?"
            record, problems = parse_record(obj, **kw)
            if record is not None and record.id in seen:
                problems.append(f"duplicate id (first on line {seen[record.id]})")
            errors += [f"{path}:{lineno}: {rid}: {p}" for p in problems]
            if record is not None:
                seen.setdefault(record.id, lineno)
                if not problems:
                    records.append(record)
    return records, errors


def load_corpus(path, **kw) -> list[dict]:
    """Records of a file that must be valid, as plain dicts; raises ValueError listing every error."""
    records, errors = validate_jsonl(path, **kw)
    if errors:
        shown = "\n".join(errors[:20]) + (f"\n… and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise ValueError(f"{path} is not a valid corpus file ({len(errors)} errors):\n{shown}")
    return [r.model_dump(exclude_none=True) for r in records]


def write_jsonl(records, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
