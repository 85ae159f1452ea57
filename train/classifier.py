"""Fine-tune a document classifier: `{"text", "label"}` records (JSONL, or TSV with a header) →
one of the config's labels, from the text's first `max_length` tokens. Generic in its labels;
the project trains its relevance gate with it (configs/gate.yaml: relevant / offtopic), which
`diplotag tag --gate` runs before the tagger. With `prefilter_c`, a TF-IDF logistic regression over
the whole text is fitted too (model/gate.py) and saved beside it: the gate's cheap first stage.
"""
import time

import numpy as np
from datasets import Dataset
from scipy.special import softmax
from sklearn.metrics import accuracy_score, classification_report, f1_score, recall_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

from ..model.gate import GATE_REJECTS, GATE_THRESHOLD, PREFILTER_FILES, WordPrefilter
from .common import base_path, load_base, load_split, resume_point, train_sequence_classifier, training_arguments, with_lora
from .config import TrainConfig


def gate_metrics(prefilter: WordPrefilter, first: np.ndarray, second: np.ndarray, gold: np.ndarray, id2label: dict) -> dict:
    """The gate as `diplotag tag --gate` decides, from each document's off-topic probability by the
    prefilter (`first`) and by the classifier (`second`): `gate_recall_<label>`, and
    `gate_pass_then_skip`, its recall of the documents it must pass, ties broken by its recall of
    those it skips (worth less than one document of the first: a gate is there to lose nothing)."""
    skipped = np.round(prefilter.combine(first, second), 4) >= GATE_THRESHOLD  # the score as `tag` writes it
    rejects = gold == [i for i, c in id2label.items() if c == GATE_REJECTS][0]
    right = np.where(rejects, skipped, ~skipped)
    out = {f"gate_recall_{c}": float(right[gold == i].mean()) if (gold == i).any() else 0.0 for i, c in id2label.items()}
    passed, skips = (float(right[m].mean()) if m.any() else 0.0 for m in (~rejects, rejects))
    return {**out, "gate_pass_then_skip": passed + skips / (len(right) + 1)}


def train_classifier(cfg: TrainConfig, resume: bool = False):
    started = time.time()
    checkpoint = resume_point(cfg, resume)
    set_seed(cfg.seed)
    label2id = {c: i for i, c in enumerate(cfg.labels)}
    id2label = dict(enumerate(cfg.labels))
    base = base_path(cfg)
    tokenizer = AutoTokenizer.from_pretrained(base)
    args = training_arguments(cfg, f"eval_{cfg.best_metric}")
    records = {name: load_split(cfg, path, "label") for name, path in (("train", cfg.train_file), ("dev", cfg.dev_file))}
    splits = {}
    with args.main_process_first(desc="tokenizing"):
        for name, rows in records.items():
            rows = [{"text": r["text"], "label": label2id[r["label"]]} for r in rows]
            splits[name] = Dataset.from_list(rows).map(
                lambda b: tokenizer(b["text"], truncation=True, max_length=cfg.max_length), batched=True,
                remove_columns=["text"])
    prefilter, prefilter_card, gate_first = None, "", None
    if cfg.prefilter_c:  # seconds, before the transformer, so that its card can show both
        prefilter = WordPrefilter.fit([r["text"] for r in records["train"]], [r["label"] for r in records["train"]],
                                      cfg.prefilter_c, cfg.prefilter_threshold, cfg.prefilter_keep_threshold)
        probs = prefilter.probabilities([r["text"] for r in records["dev"]])
        if GATE_REJECTS in cfg.labels:  # the gate's first stage on dev, for the checkpoints' gate_* metrics
            gate_first = probs[:, prefilter.labels.index(GATE_REJECTS)]
        report = classification_report([r["label"] for r in records["dev"]],
                                       [prefilter.labels[i] for i in probs.argmax(1)],
                                       labels=cfg.labels, digits=4, zero_division=0)
        alone = f"at or over an off-topic probability of {cfg.prefilter_threshold}" + (
            f" (skipped) and at or under {cfg.prefilter_keep_threshold} (kept)" if cfg.prefilter_keep_threshold is not None else "")
        prefilter_card = (f"\n## The prefilter\n\nTF-IDF over the whole text ({len(prefilter.vectorizer.vocabulary_)} "
                          f"words) and a logistic regression (C = {cfg.prefilter_c}), in `prefilter.json` and "
                          f"`prefilter.safetensors`; as the relevance gate it decides alone {alone}, and elsewhere the "
                          f"mean of its probability and the classifier's does. Dev scores of its most probable class "
                          f"(i.e. at 0.5):\n\n```\n{report}```\n")

    model = load_base(AutoModelForSequenceClassification, cfg, num_labels=len(cfg.labels), id2label=id2label,
                      label2id=label2id)
    model = with_lora(model, cfg, "SEQ_CLS", head="classifier")
    reports = {}

    def metrics(pred):
        logits, gold = pred
        best = np.asarray(logits).argmax(-1)
        reports["last"] = classification_report(gold, best, labels=list(id2label), target_names=cfg.labels,
                                                digits=4, zero_division=0)
        recalls = recall_score(gold, best, labels=list(id2label), average=None, zero_division=0)
        out = {"macro_f1": f1_score(gold, best, average="macro", labels=list(id2label)),
               "accuracy": accuracy_score(gold, best),
               **{f"recall_{c}": float(r) for c, r in zip(cfg.labels, recalls)}}
        if gate_first is not None:
            second = softmax(np.asarray(logits, dtype=np.float64), axis=-1)[:, label2id[GATE_REJECTS]]
            out.update(gate_metrics(prefilter, gate_first, second, np.asarray(gold), id2label))
        return out

    def card():  # after the last evaluation, whose per-class report it shows
        return (f"Training data: {len(splits['train'])} documents, read up to their first {cfg.max_length} tokens; "
                f"dev: {len(splits['dev'])}.\n\n## Per-class dev scores\n\n```\n{reports['last']}```\n"
                + prefilter_card)

    dev = train_sequence_classifier(cfg, args, model, tokenizer, splits, metrics, card, started, checkpoint)
    if args.process_index == 0:
        for name in PREFILTER_FILES:  # an earlier run's prefilter in the same folder is not this run's
            (cfg.output_dir / name).unlink(missing_ok=True)
        if prefilter is not None:
            prefilter.save_pretrained(cfg.output_dir)
    return dev
