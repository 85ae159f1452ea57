"""Sentence segmentation with char offsets, by pysbd (rule-based, abbreviation-aware)."""
from functools import lru_cache

import pysbd


@lru_cache(maxsize=1)
def _segmenter():
    return pysbd.Segmenter(language="en", clean=False)


def sentence_bounds(text: str, near=None, lines_before=1) -> list[tuple[int, int]]:
    """[start, end) of each sentence, white space trimmed, in order. pysbd's own char_span
    mode re-finds sentences by search and can misplace repeated ones, so each segment is
    located here from the end of the previous one. With `near` (a list of (start, end)), only
    the lines that hold those ranges, and `lines_before` lines before each, are segmented:
    enough to give a statement its sentence and those before it, at a fraction of the cost."""
    paragraphs = list(_paragraphs(text))
    if near is not None:
        keep = set()
        for i, (start, line) in enumerate(paragraphs):
            if any(a < start + len(line) and b > start for a, b in near):
                keep.update(range(i - lines_before, i + 1))
        paragraphs = [p for i, p in enumerate(paragraphs) if i in keep]
    bounds, pos = [], 0
    for paragraph_start, paragraph in paragraphs:
        for segment in _segmenter().segment(paragraph):
            segment = segment.strip()
            if not segment:
                continue
            start = text.find(segment, max(pos, paragraph_start), paragraph_start + len(paragraph))
            if start < 0:  # pysbd altered the segment (it should not, with clean=False): skip it
                continue
            bounds.append((start, start + len(segment)))
            pos = start + len(segment)
    return bounds


def _paragraphs(text: str):
    """Blank-line separated blocks; headlines and datelines stand on their own lines in news
    copy, so every line break ends a sentence too."""
    pos = 0
    for line in text.splitlines(keepends=True):
        if line.strip():
            yield pos, line
        pos += len(line)


def sentence_of(bounds: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """The smallest run of sentences that holds [start, end)."""
    first = next((i for i, (a, b) in enumerate(bounds) if b > start), len(bounds) - 1)
    last = next((i for i, (a, b) in enumerate(bounds) if b >= end), len(bounds) - 1)
    return bounds[first][0], bounds[max(first, last)][1]
