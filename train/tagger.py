"""Fine-tune the statement tagger: token classification over BIO tags.

Generic in its label set: the same code trains on the corpus JSONL or on a CoNLL
NER corpus such as re3d (`configs/re3d.yaml`).
"""
import hashlib
import time
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                          Trainer, set_seed)

from ..data.align import IGNORE, bio_labels, char_spans_to_bio, encode_documents, special_tokens_template, window_features
from .common import (base_path, callbacks, load_split, resume_point, save_trained, train_tokens_per_second,
                     training_arguments, with_lora)
from .config import TrainConfig


def tokenize_split(records, tokenizer, cfg: TrainConfig, label2id: dict, stride: int, cache_dir) -> Dataset:
    """Windows with labels for every document, built with `datasets.map` and cached on disk
    under a name that changes with the text, the tokenizer and the windowing."""
    template = special_tokens_template(tokenizer)

    def to_windows(batch):
        out = {"input_ids": [], "attention_mask": [], "labels": []}
        for enc, spans in zip(encode_documents(tokenizer, batch["text"]), batch["spans"]):
            labels = char_spans_to_bio(enc, spans, label2id, cfg.label_all_subtokens)
            for f in window_features(tokenizer, enc, cfg.max_length, stride, labels, template):
                for k in out:
                    out[k].append(f[k])
        return out

    ds = Dataset.from_list([{"text": r["text"], "spans": [
        {"start": s["start"], "end": s["end"], "label": s["label"]} for s in r["spans"]]} for r in records])
    key = hashlib.sha256(repr((ds._fingerprint, tokenizer.name_or_path, len(tokenizer), sorted(label2id.items()),
                               cfg.max_length, stride, cfg.label_all_subtokens)).encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    return ds.map(to_windows, batched=True, remove_columns=ds.column_names,
                  cache_file_name=str(cache_dir / f"windows-{key}.arrow"))


def class_weights(dataset: Dataset, n_tags: int) -> torch.Tensor:
    """sqrt(inverse frequency) of each tag among the labelled sub-tokens, mean 1: O (most tokens)
    is down-weighted without letting rare I- tags dominate the loss."""
    counts = Counter(y for row in dataset["labels"] for y in row if y != IGNORE)
    freq = np.array([counts.get(i, 0) for i in range(n_tags)], dtype=np.float64) + 1.0
    w = 1.0 / np.sqrt(freq)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def seqeval_metrics(id2label: dict):
    def compute(pred):
        logits, gold = pred
        best = logits.argmax(-1)
        y_true = [[id2label[g] for g in row if g != IGNORE] for row in gold]
        y_pred = [[id2label[p] for p, g in zip(prow, grow) if g != IGNORE] for prow, grow in zip(best, gold)]
        kw = dict(mode="strict", scheme=IOB2, zero_division=0)
        return {"f1": f1_score(y_true, y_pred, **kw), "precision": precision_score(y_true, y_pred, **kw),
                "recall": recall_score(y_true, y_pred, **kw),
                "macro_f1": f1_score(y_true, y_pred, average="macro", **kw),
                "report": classification_report(y_true, y_pred, digits=4, **kw)}
    return compute


def train_tagger(cfg: TrainConfig, resume: bool = False):
    started = time.time()
    checkpoint = resume_point(cfg, resume)
    set_seed(cfg.seed)
    tags = bio_labels(cfg.labels)
    label2id = {t: i for i, t in enumerate(tags)}
    id2label = dict(enumerate(tags))
    base = base_path(cfg)
    tokenizer = AutoTokenizer.from_pretrained(base)

    train_records = load_split(cfg, cfg.train_file, "label")
    dev_records = load_split(cfg, cfg.dev_file, "label")
    cache = cfg.output_dir / "cache"
    train_ds = tokenize_split(train_records, tokenizer, cfg, label2id, cfg.stride, cache)
    dev_ds = tokenize_split(dev_records, tokenizer, cfg, label2id, 0, cache)  # no overlap: each token scored once

    model = AutoModelForTokenClassification.from_pretrained(base, num_labels=len(tags), id2label=id2label,
                                                            label2id=label2id)
    weights = class_weights(train_ds, len(tags)) if cfg.class_weighting == "sqrt_inverse" else None
    if weights is not None:  # saved with the model: inference divides them back out of the probabilities
        model.config.diplotag_class_weights = [round(float(w), 6) for w in weights]
    model = with_lora(model, cfg, "TOKEN_CLS", head="classifier")

    def weighted_loss(outputs, labels, num_items_in_batch=None):
        # Trainer hands over the labelled-token count of the whole accumulated (and, across
        # processes, gathered) batch; summing and dividing by it keeps the loss scale right
        # under gradient accumulation and data parallelism.
        logits = outputs["logits"]
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), labels.view(-1),
                               weight=weights.to(logits.device), ignore_index=IGNORE, reduction="sum")
        n = num_items_in_batch if num_items_in_batch is not None else (labels != IGNORE).sum()
        return loss / n

    compute = seqeval_metrics(id2label)
    reports = {}

    def metrics(pred):  # the text report goes to the card, not into the Trainer's float logs
        m = compute(pred)
        reports["last"] = m.pop("report")
        return m

    trainer = Trainer(
        model=model, args=training_arguments(cfg, "eval_f1"),
        train_dataset=train_ds, eval_dataset=dev_ds, processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_loss_func=weighted_loss if weights is not None else None,
        compute_metrics=metrics, callbacks=callbacks(cfg),
    )
    run = trainer.train(resume_from_checkpoint=checkpoint)
    dev = trainer.evaluate()  # the best checkpoint, loaded at the end of training
    dev = {k: v for k, v in dev.items() if k.startswith("eval_") and isinstance(v, float)}
    card = (f"## Per-label dev scores (seqeval, strict IOB2)\n\n```\n{reports['last']}```\n\n"
            f"Training data: {len(train_records)} documents, {len(train_ds)} windows of up to {cfg.max_length} tokens.\n"
            f"Class imbalance: {cfg.class_weighting} class weights on the cross-entropy.\n")
    if trainer.is_world_process_zero():
        save_trained(trainer, tokenizer, cfg, dev, started, card, train_tokens_per_second(run, train_ds))
    return dev
