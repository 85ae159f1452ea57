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
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2
from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                          Trainer, set_seed)

from ..data.align import (ALIGN_VERSION, IGNORE, bio_labels, char_spans_to_bio, encode_documents,
                          special_tokens_template, window_features)
from ..data.spans import match_spans, overlaps, prf
from ..model.tagger import decode_document
from .common import (base_path, callbacks, load_base, load_split, optimizer_with_head_rate, resume_point, save_trained,
                     train_tokens_per_second, training_arguments, with_lora)
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
    key = hashlib.sha256(repr((ALIGN_VERSION, ds._fingerprint, tokenizer.name_or_path, len(tokenizer), sorted(label2id.items()),
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


def decoded_span_metrics(records, tokenizer, cfg: TrainConfig, id2label: dict):
    """Dev scores as `diplotag tag` would deliver them. The dev windows (no overlap, in document
    order) are put back into documents and decoded with the tagger's own decoder (valid-IOB2
    Viterbi, whole words, shortest statement); `f1` is then strict span F1 (offsets and label
    exact), `overlap_f1` its lenient twin. Argmax tags scored by seqeval's strict IOB2 stay as
    `token_f1`: they read 0 for a model that predicts I- tags without a B-, which Viterbi decodes
    into statements, so they must not choose checkpoints."""
    encodings = encode_documents(tokenizer, [r["text"] for r in records])
    template = special_tokens_template(tokenizer)
    owners = [(d, f["token_index"]) for d, enc in enumerate(encodings)
              for f in window_features(tokenizer, enc, cfg.max_length, 0, template=template)]
    exact = lambda g, p: (g["start"], g["end"], g["label"]) == (p["start"], p["end"], p["label"])
    lenient = lambda g, p: overlaps(g, p) and g["label"] == p["label"]

    def compute(pred):
        logits, gold = pred
        per_doc = [[] for _ in records]
        for (d, index), row in zip(owners, logits):
            row = torch.from_numpy(np.asarray(row[:len(index)], dtype=np.float32)).softmax(-1).numpy()
            per_doc[d].append((index, row))
        scores = {}
        for name, same in (("", exact), ("overlap_", lenient)):
            hits = n_pred = n_gold = 0
            for r, enc, wins in zip(records, encodings, per_doc):
                predicted = decode_document(r["text"], enc, wins, id2label, cfg.min_span_words)
                pairs, _ = match_spans(r["spans"], predicted, same)
                hits += sum(p is not None for _, p in pairs)
                n_pred, n_gold = n_pred + len(predicted), n_gold + len(r["spans"])
            scores.update({f"{name}{k}": v for k, v in prf(hits, n_pred, n_gold).items()})
        best = logits.argmax(-1)
        y_true = [[id2label[g] for g in row if g != IGNORE] for row in gold]
        y_pred = [[id2label[p] for p, g in zip(prow, grow) if g != IGNORE] for prow, grow in zip(best, gold)]
        kw = dict(mode="strict", scheme=IOB2, zero_division=0)
        scores["token_f1"] = f1_score(y_true, y_pred, **kw)
        scores["report"] = classification_report(y_true, y_pred, digits=4, **kw)
        return scores
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
    args = training_arguments(cfg, "eval_f1")
    with args.main_process_first(desc="tokenizing"):  # one process writes the cache, the others read it
        train_ds = tokenize_split(train_records, tokenizer, cfg, label2id, cfg.stride, cache)
        dev_ds = tokenize_split(dev_records, tokenizer, cfg, label2id, 0, cache)  # no overlap: each token scored once

    model = load_base(AutoModelForTokenClassification, cfg, num_labels=len(tags), id2label=id2label, label2id=label2id)
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

    compute = decoded_span_metrics(dev_records, tokenizer, cfg, id2label)
    reports = {}

    def metrics(pred):  # the text report goes to the card, not into the Trainer's float logs
        m = compute(pred)
        reports["last"] = m.pop("report")
        return m

    trainer = Trainer(
        model=model, args=args,
        train_dataset=train_ds, eval_dataset=dev_ds, processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_loss_func=weighted_loss if weights is not None else None,
        compute_metrics=metrics, callbacks=callbacks(cfg),
        optimizers=(optimizer_with_head_rate(model, cfg, "classifier"), None),
    )
    run = trainer.train(resume_from_checkpoint=checkpoint)
    dev = trainer.evaluate()  # the best checkpoint, loaded at the end of training
    dev = {k: v for k, v in dev.items() if k.startswith("eval_") and isinstance(v, float)}
    card = (f"Dev `f1` is strict span F1 of decoded documents (what `diplotag tag` outputs); `token_f1` is "
            f"seqeval's strict IOB2 over argmax tags.\n\n## Per-label dev scores (seqeval, strict IOB2, argmax)\n\n```\n{reports['last']}```\n\n"
            f"Training data: {len(train_records)} documents, {len(train_ds)} windows of up to {cfg.max_length} tokens.\n"
            f"Class imbalance: {cfg.class_weighting} class weights on the cross-entropy.\n")
    if trainer.is_world_process_zero():
        save_trained(trainer, tokenizer, cfg, dev, started, card, train_tokens_per_second(run, train_ds))
    return dev
