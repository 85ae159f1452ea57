"""Gold char spans → sub-token BIO labels → (windowed, merged) predictions → char spans must
give back exactly the same offsets."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diplotag.data.align import (
    IGNORE, bio_labels, bio_to_char_spans, char_spans_to_bio, encode_document, merge_window_probs,
    window_bounds, window_features,
)
from diplotag.data.markup import LABELS

TAGS = bio_labels(LABELS)
LABEL2ID = {t: i for i, t in enumerate(TAGS)}


def round_trip(tokenizer, text, spans, max_length, stride, label_all_subtokens=False):
    """Encode gold labels, cut windows, turn each window's labels into one-hot 'predictions'
    (continuation sub-tokens predict O, as an untrained model may), merge and decode."""
    enc = encode_document(tokenizer, text)
    labels = char_spans_to_bio(enc, spans, LABEL2ID, label_all_subtokens)
    windows = []
    for f in window_features(tokenizer, enc, max_length, stride, labels):
        probs = np.zeros((len(f["input_ids"]), len(TAGS)), dtype=np.float32)
        for j, y in enumerate(f["labels"]):
            probs[j, 0 if y == IGNORE else y] = 1.0
        windows.append((f["token_index"], probs))
    merged = merge_window_probs(len(enc.input_ids), windows)
    return bio_to_char_spans(text, enc, merged, dict(enumerate(TAGS)))


BASE_CHARS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    ".,;:!?()[]'\"“”‘’‑—–-/%$€…"
    "中国海軍南シナ海대한민국"
    "🚢⚓🇯🇵😀"
)
COMBINING = "\u0301\u0308\u0327\ufe0f"
SEPARATORS = [" ", "  ", "\t", "\n", "\r\n", "\n\n", " \u00a0"]

atom = st.tuples(st.sampled_from(BASE_CHARS), st.sampled_from(["", ""] + list(COMBINING))).map("".join)
piece = st.lists(atom, min_size=1, max_size=8).map("".join)


@st.composite
def documents(draw, max_pieces=60):
    pieces = draw(st.lists(piece, min_size=1, max_size=max_pieces))
    seps = [draw(st.sampled_from(SEPARATORS)) for _ in pieces]
    text, bounds = "", []
    for p, sep in zip(pieces, seps):
        bounds.append((len(text), len(text) + len(p)))
        text += p + sep
    # spans: disjoint runs of whole pieces, separated by at least one piece boundary
    spans, i = [], 0
    while i < len(bounds):
        if draw(st.booleans()):
            n = draw(st.integers(1, 6))
            j = min(i + n, len(bounds)) - 1
            spans.append({"start": bounds[i][0], "end": bounds[j][1],
                          "label": draw(st.sampled_from(LABELS)), "stance": "support"})
            i = j + 1
        i += 1
    return text, spans


def offsets(spans):
    return [(s["start"], s["end"], s["label"]) for s in spans]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents())
def test_round_trip_one_window(default_tokenizer, doc):
    text, spans = doc
    assert offsets(round_trip(default_tokenizer, text, spans, 512, 128)) == offsets(spans)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents(max_pieces=150), window=st.integers(8, 40), label_all=st.booleans())
def test_round_trip_many_windows(default_tokenizer, doc, window, label_all):
    text, spans = doc
    stride = window // 3
    assert offsets(round_trip(default_tokenizer, text, spans, window, stride, label_all)) == offsets(spans)


def test_round_trip_long_seed_document(default_tokenizer, seed_record):
    """A document many windows long at the real window size: the seed article, 12 times."""
    text, spans = "", []
    for k in range(12):
        base = len(text)
        text += seed_record["text"] + "\r\n\r\n"
        spans += [dict(s, start=s["start"] + base, end=s["end"] + base) for s in seed_record["spans"]]
    assert len(encode_document(default_tokenizer, text).input_ids) > 3 * 512
    assert offsets(round_trip(default_tokenizer, text, spans, 512, 128)) == offsets(spans)


@pytest.mark.parametrize("n,window,stride", [(0, 10, 2), (10, 10, 2), (11, 10, 2), (1000, 510, 128)])
def test_window_bounds_cover_everything(n, window, stride):
    bounds = window_bounds(n, window, stride)
    covered = set()
    for a, b in bounds:
        assert b - a <= window
        covered.update(range(a, b))
    assert covered == set(range(n))
    for (a1, b1), (a2, b2) in zip(bounds, bounds[1:]):
        assert b1 - a2 == stride


def test_continuation_subtokens_follow_run_ner(default_tokenizer):
    text = "Manila received ultramodernised corvettes."
    span = [{"start": 7, "end": 41, "label": "EQUIPMENT_TRANSFER"}]
    enc = encode_document(default_tokenizer, text)
    first = char_spans_to_bio(enc, span, LABEL2ID)
    every = char_spans_to_bio(enc, span, LABEL2ID, label_all_subtokens=True)
    assert IGNORE in first  # "ultramodernised" is several word pieces
    assert IGNORE not in every
    assert TAGS[first[1]] == "B-EQUIPMENT_TRANSFER" and TAGS[every[-1]] == "O"
    assert {TAGS[i] for i in every[2:-1]} == {"I-EQUIPMENT_TRANSFER"}


def test_decoding_keeps_iob2_valid_instead_of_following_stray_tags(default_tokenizer):
    """Word-level argmax would read O I-X I-X as a span opened by an I- tag, and B-X I-Y as two
    spans; the Viterbi decoder finds the most probable valid sequence."""
    text = "alpha bravo charlie delta echo"
    enc = encode_document(default_tokenizer, text)
    assert len(enc.input_ids) == 5
    o, bx, ix = LABEL2ID["O"], LABEL2ID["B-EQUIPMENT_TRANSFER"], LABEL2ID["I-EQUIPMENT_TRANSFER"]
    iy = LABEL2ID["I-FREEDOM_OF_NAVIGATION"]
    probs = np.full((5, len(TAGS)), 1e-4, dtype=np.float32)
    probs[0, o] = 0.9
    probs[1, ix], probs[1, bx], probs[1, o] = 0.6, 0.3, 0.1   # a stray I- after O
    probs[2, ix] = 0.9
    probs[3, iy], probs[3, ix] = 0.55, 0.45                   # a label switch mid-span
    probs[4, o] = 0.9
    spans = bio_to_char_spans(text, enc, probs / probs.sum(1, keepdims=True), dict(enumerate(TAGS)))
    assert [(text[s["start"]:s["end"]], s["label"]) for s in spans] == [("bravo charlie delta", "EQUIPMENT_TRANSFER")]
