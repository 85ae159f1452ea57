"""Offset-exact alignment between char spans and sub-token BIO labels.

A document is tokenized once, without truncation, with the tokenizer's offset
mapping and word ids; windows of `max_length` tokens (special tokens included)
are cut from that one encoding with an overlap of `stride` tokens. Labels follow
Hugging Face's run_ner.py: the first sub-token of a word gets the word's tag, the
continuation sub-tokens get -100 (ignored by the loss) or, with
`label_all_subtokens`, the word's I- tag.

The reverse maps per-token predictions (merged across windows, each token taking
the window in which it has the most context) back to char spans.
"""
from dataclasses import dataclass

import numpy as np

IGNORE = -100
# Bumped whenever labelling or windowing changes: cached training windows are keyed on it.
ALIGN_VERSION = 2


def bio_labels(entity_types) -> list[str]:
    """["O", "B-X", "I-X", …] in a fixed order, so label ids are stable across runs."""
    return ["O"] + [f"{p}-{t}" for t in sorted(entity_types) for p in ("B", "I")]


@dataclass
class Encoding:
    """One document's tokens: ids, char offsets [start, end) and word ids (None for none)."""
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]


def encode_document(tokenizer, text: str) -> Encoding:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return Encoding(enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]], enc.word_ids())


def encode_documents(tokenizer, texts: list[str]) -> list[Encoding]:
    """Batch form of `encode_document`: the fast tokenizer runs the batch in parallel."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [Encoding(enc["input_ids"][i], [tuple(o) for o in enc["offset_mapping"][i]], enc.word_ids(i))
            for i in range(len(texts))]


def window_bounds(n_tokens: int, window: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) token ranges of at most `window` tokens, consecutive ones overlapping by
    `stride` tokens, covering all `n_tokens` (one empty window for an empty document)."""
    if window <= stride:
        raise ValueError(f"window ({window}) must be larger than stride ({stride})")
    bounds, start = [], 0
    while True:
        end = min(start + window, n_tokens)
        bounds.append((start, end))
        if end >= n_tokens:
            return bounds
        start = end - stride


def char_spans_to_bio(enc: Encoding, spans, label2id: dict, label_all_subtokens=False) -> list[int]:
    """Token label ids for a whole document. A word belongs to the span that holds its first
    character; a span's first word is B-, the rest I-."""
    labels, prev_word, prev_span = [], None, None
    for (start, end), word in zip(enc.offsets, enc.word_ids):
        if word is None or start == end:
            labels.append(IGNORE)
            continue
        if word == prev_word:  # continuation sub-token
            tag = labels_of_word
            labels.append(label2id[tag.replace("B-", "I-")] if label_all_subtokens and tag != "O" else IGNORE)
            continue
        hit = next(((i, s) for i, s in enumerate(spans) if s["start"] <= start < s["end"]), None)
        if hit is None:
            labels_of_word = "O"
        else:
            labels_of_word = ("I-" if hit[0] == prev_span else "B-") + hit[1]["label"]
        prev_word, prev_span = word, (hit[0] if hit else None)
        labels.append(label2id[labels_of_word])
    return labels


def special_tokens_template(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one sequence ([CLS] … [SEP], <s> … </s>),
    read off an encoding so that any tokenizer works."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    k = next(i for i in range(len(full)) if full[i:i + len(plain)] == plain)
    return full[:k], full[k + len(plain):]


def window_features(tokenizer, enc: Encoding, max_length: int, stride: int, labels=None,
                    template=None) -> list[dict]:
    """Model inputs for each window of one document: input_ids and attention_mask with the
    tokenizer's special tokens, `token_index` (position in the document, -1 for special tokens)
    and, when given, `labels`."""
    prefix, suffix = template or special_tokens_template(tokenizer)
    features = []
    for a, b in window_bounds(len(enc.input_ids), max_length - len(prefix) - len(suffix), stride):
        ids = prefix + enc.input_ids[a:b] + suffix
        index = [-1] * len(prefix) + list(range(a, b)) + [-1] * len(suffix)
        feature = {"input_ids": ids, "attention_mask": [1] * len(ids), "token_index": index}
        if labels is not None:
            feature["labels"] = [IGNORE if i < 0 else labels[i] for i in index]
        features.append(feature)
    return features


def merge_window_probs(n_tokens: int, windows: list[tuple[list[int], np.ndarray]]) -> np.ndarray:
    """Per-token probabilities for a document from overlapping windows. Each token takes the
    window in which it sits farthest from an edge (run_qa.py's 'max context' rule)."""
    n_labels = windows[0][1].shape[-1] if windows else 1
    merged = np.zeros((n_tokens, n_labels), dtype=np.float32)
    best = np.full(n_tokens, -1)
    for token_index, probs in windows:
        idx = np.asarray(token_index)
        real = np.flatnonzero(idx >= 0)
        if not len(real):
            continue
        pos = np.arange(len(real))
        context = np.minimum(pos, len(real) - 1 - pos)
        doc_idx = idx[real]
        take = context > best[doc_idx]
        merged[doc_idx[take]] = probs[real[take]]
        best[doc_idx[take]] = context[take]
    return merged


def allowed_transitions(id2label: dict) -> np.ndarray:
    """allowed[i, j]: tag j may follow tag i in IOB2 (I-X only after B-X or I-X)."""
    tags = [id2label[i] for i in range(len(id2label))]
    allowed = np.ones((len(tags), len(tags)), dtype=bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            allowed[:, j] = [t in (f"B-{tag[2:]}", tag) for t in tags]
    return allowed


def viterbi_tags(log_probs: np.ndarray, allowed: np.ndarray, can_start: np.ndarray) -> list[int]:
    """The most probable tag sequence that is valid IOB2."""
    n, k = log_probs.shape
    if n == 0:
        return []
    penalty = np.where(allowed, 0.0, -np.inf)
    score = np.where(can_start, log_probs[0], -np.inf)
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        cand = score[:, None] + penalty  # previous tag × current tag
        back[t] = cand.argmax(0)
        score = cand.max(0) + log_probs[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def bio_to_char_spans(text: str, enc: Encoding, probs: np.ndarray, id2label: dict) -> list[dict]:
    """Decode per-token probabilities into char spans. A word is read from its first sub-token
    (as it was labelled in training); the tag sequence is the most probable one that is valid
    IOB2 (Viterbi with I-X allowed only after B-X or I-X), so no statement starts or switches
    label mid-way on one stray token. `score` is the mean probability of the chosen tags."""
    words, rows = [], []  # [start, end] per word; the first sub-token's probabilities
    prev_word = None
    for t, ((start, end), word) in enumerate(zip(enc.offsets, enc.word_ids)):
        if word is None or start == end:
            continue
        if word == prev_word:
            words[-1][1] = end
            continue
        prev_word = word
        words.append([start, end])
        rows.append(probs[t])
    word_probs = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(id2label))
    allowed = allowed_transitions(id2label)
    can_start = np.array([not id2label[i].startswith("I-") for i in range(len(id2label))])
    path = viterbi_tags(np.log(word_probs + 1e-12), allowed, can_start)

    spans, current = [], None
    for (start, end), tag_id, p in zip(words, path, word_probs):
        kind, _, label = id2label[tag_id].partition("-")
        if kind == "I" and current:
            current["end"], current["_p"] = end, current["_p"] + [p[tag_id]]
            continue
        if current:
            spans.append(current)
        current = {"start": start, "end": end, "label": label, "_p": [p[tag_id]]} if kind == "B" else None
    if current:
        spans.append(current)

    covered = np.zeros(len(text) + 1, dtype=bool)
    for start, end in enc.offsets:
        covered[start:end] = True
    for s in spans:
        # Characters no token covers (combining marks a normaliser dropped, zero-width
        # characters) stay with the word they are attached to.
        while s["end"] < len(text) and not covered[s["end"]] and not text[s["end"]].isspace():
            s["end"] += 1
        while s["start"] > 0 and not covered[s["start"] - 1] and not text[s["start"] - 1].isspace():
            s["start"] -= 1
        s["score"] = round(float(np.mean(s.pop("_p"))), 4)
    return spans
