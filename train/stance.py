"""Fine-tune the stance classifier: (label in words, statement marked in its context) →
support / oppose / neutral.

Trained on gold spans plus copies whose edges are moved by a few words, so that it
judges the tagger's slightly-off spans as it judges gold ones.
"""
import random
import time

import numpy as np
from datasets import Dataset
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

from ..data.convert import word_tokens
from ..data.sentences import sentence_bounds
from ..model.stance import stance_inputs
from .common import base_path, load_base, load_split, resume_point, train_sequence_classifier, training_arguments, with_lora
from .config import TrainConfig
from .holder import predicted_holders


def jittered(words: list[tuple[int, int]], start: int, end: int, max_words: int,
             rng: random.Random) -> tuple[int, int]:
    """Move each edge of [start, end) by up to `max_words` of the document's `words`, inward or
    outward, keeping the span non-empty and trimmed."""
    inside = [k for k, (a, b) in enumerate(words) if a >= start and b <= end]
    if not inside:
        return start, end
    first, last = inside[0], inside[-1]
    first = min(max(0, first + rng.randint(-max_words, max_words)), last)
    last = max(min(len(words) - 1, last + rng.randint(-max_words, max_words)), first)
    return words[first][0], words[last][1]


def stance_examples(records, cfg: TrainConfig, label2id: dict, jitter: bool) -> list[dict]:
    """Gold spans (and, with `jitter`, their jittered copies) as stance inputs. With
    `holder_in_input`, training examples (`jitter`) name their `holder` half the time and
    "unknown" otherwise, as `diplotag tag` reads a statement before and after its holder is found;
    dev examples name theirs (`train_stance` gives both the ranker's holders, not the gold ones)."""
    rng = random.Random(cfg.seed)
    rows = []
    for r in records:
        text, spans = r["text"], []
        words = word_tokens(text, 0, len(text), [])  # white-space words, found once per document
        for s in r["spans"]:
            spans.append(s)
            if jitter:
                spans += [dict(s, start=a, end=b) for a, b in
                          (jittered(words, s["start"], s["end"], cfg.boundary_jitter, rng) for _ in range(cfg.jitter_copies))]
        if cfg.holder_in_input and jitter:
            spans = [s if rng.random() < 0.5 else dict(s, holder=None) for s in spans]
        for s, (first, second) in zip(spans, stance_inputs(text, spans, cfg.context_sentences,
                                                           bounds=sentence_bounds(text), holders=cfg.holder_in_input)):
            rows.append({"first": first, "second": second, "label": label2id[s["stance"]]})
    return rows


def train_stance(cfg: TrainConfig, resume: bool = False):
    started = time.time()
    checkpoint = resume_point(cfg, resume)
    set_seed(cfg.seed)
    label2id = {s: i for i, s in enumerate(cfg.labels)}
    id2label = dict(enumerate(cfg.labels))
    base = base_path(cfg)
    tokenizer = AutoTokenizer.from_pretrained(base)

    def tokenize(batch):
        return tokenizer(batch["first"], batch["second"], truncation="only_second", max_length=cfg.max_length)

    args = training_arguments(cfg, "eval_macro_f1")
    splits = {}
    with args.main_process_first(desc="tokenizing"):
        records = {"train": load_split(cfg, cfg.train_file, "stance"), "dev": load_split(cfg, cfg.dev_file, "stance")}
        if cfg.holder_in_input:  # holders as a ranker would give them: train's out of fold, dev's by a ranker fitted on train
            records = {"train": predicted_holders(records["train"]),
                       "dev": predicted_holders(records["dev"], fitted_on=records["train"])}
        for name, jitter in (("train", True), ("dev", False)):
            rows = stance_examples(records[name], cfg, label2id, jitter)
            splits[name] = Dataset.from_list(rows).map(tokenize, batched=True, remove_columns=["first", "second"])

    model = load_base(AutoModelForSequenceClassification, cfg, num_labels=len(cfg.labels), id2label=id2label,
                      label2id=label2id)
    model = with_lora(model, cfg, "SEQ_CLS", head="classifier")

    def metrics(pred):
        logits, gold = pred
        best = np.asarray(logits).argmax(-1)
        return {"macro_f1": f1_score(gold, best, average="macro", labels=list(id2label)),
                "accuracy": accuracy_score(gold, best)}

    def card():
        return (f"Training data: {len(splits['train'])} statements ({cfg.jitter_copies} jittered copies of each gold "
                f"span, edges moved up to {cfg.boundary_jitter} words); dev: {len(splits['dev'])} gold statements.\n")

    return train_sequence_classifier(cfg, args, model, tokenizer, splits, metrics, card, started, checkpoint)
