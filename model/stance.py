"""How the stance model sees a statement: its label in words (and, for a model trained with
`holder_in_input`, its holder's name), then its sentence (and the one before, where the holder
often stands) with the statement marked by « ».

The same function builds training examples and inference inputs, so the two never drift.
"""
import re
from itertools import islice

from ..data.sentences import sentence_bounds, sentence_of

MARK_OPEN, MARK_CLOSE = "«", "»"
CONTEXT_CHARS = 600  # at most this much context on each side of the statement
UNKNOWN_HOLDER = "unknown"  # a holder-reading model's input before the holder is known
HEAD_WORD = re.compile(r"\S+")


def label_words(label: str) -> str:
    return label.lower().replace("_", " ")


def marked_context(text: str, bounds, start: int, end: int, context_sentences=1, also=(), also_marks=("[", "]"),
                   head_words=0) -> str:
    """The statement text[start:end] marked by « » in its sentence and the `context_sentences`
    before it; the (start, end) ranges in `also` that fall inside it are marked by `also_marks`.
    With `head_words`, the document's first words (headline, byline, dateline: where a briefing's
    or a ministry release's issuer is named; whole words, within its first CONTEXT_CHARS) follow it
    after " … ", where they end before it: last, so that a truncated input loses them, not the
    statement's closing mark."""
    a, b = sentence_of(bounds, start, end) if bounds else (0, len(text))
    first = next((i for i, (s, _) in enumerate(bounds) if s == a), 0)
    a = bounds[max(0, first - context_sentences)][0] if bounds else a
    a, b = max(a, start - CONTEXT_CHARS), min(b, end + CONTEXT_CHARS)
    context = with_marks(text, a, b, [(start, 1, f"{MARK_OPEN} "), (end, 0, f" {MARK_CLOSE}")], also, also_marks)
    words = [w for w in islice(HEAD_WORD.finditer(text), head_words) if w.end() <= min(a, CONTEXT_CHARS)]
    return context + " … " + with_marks(text, 0, words[-1].end(), [], also, also_marks) if words else context


def with_marks(text: str, a: int, b: int, inserts, also, also_marks) -> str:
    """text[a:b] with `inserts` (position, order, mark) and the `also` ranges inside it marked,
    whitespace collapsed."""
    inserts = sorted(list(inserts) + [m for s, e in also if a <= s and e <= b
                                      for m in ((s, 2, f"{also_marks[0]} "), (e, -1, f" {also_marks[1]}"))])
    pieces, at = [], a
    for pos, _, mark in inserts:
        pieces += [text[at:pos], mark]
        at = pos
    return " ".join(("".join(pieces) + text[at:b]).split())


def stance_input(text: str, bounds, start: int, end: int, label: str, context_sentences=1,
                 holder: str | None = None) -> tuple[str, str]:
    """(label in words, marked context) for one statement text[start:end]; with a `holder`,
    (label in words "by" holder, marked context)."""
    first = label_words(label) if holder is None else f"{label_words(label)} by {holder}"
    return first, marked_context(text, bounds, start, end, context_sentences)


def stance_inputs(text: str, spans, context_sentences=1, bounds=None, holders=False) -> list[tuple[str, str]]:
    """`stance_input` for every span of one document, with each span's `holder` (`UNKNOWN_HOLDER`
    where it has none yet) when `holders`. Sentences are segmented only around the spans (their
    lines and the lines before), unless `bounds` are given."""
    if not spans:
        return []
    if bounds is None:
        bounds = sentence_bounds(text, near=[(s["start"], s["end"]) for s in spans], lines_before=context_sentences)
    return [stance_input(text, bounds, s["start"], s["end"], s["label"], context_sentences,
                         (s.get("holder") or UNKNOWN_HOLDER) if holders else None) for s in spans]
