"""Fit the holder ranker (model/holder.py): a conditional logit — softmax over each statement's
candidates, the gold holder's log-probability maximised (L2-regularised, L-BFGS) — on the train
split; then, with `rerank_top`, a cross-encoder over the ranker's top candidates (a sequence-pair
classifier: does this candidate hold the marked statement?), whose weight beside the ranker is
fitted on dev. The dev split reports holder accuracy beside the nearest-preceding-actor baseline.
"""
import json
import math
import shutil
import time

import numpy as np
import yaml
import torch

from ..data.sentences import sentence_bounds
from ..model.holder import FEATURES, HOLDS, RERANKER_DIR, HolderRanker, candidate_features, gazetteer, nearest_preceding_actor
from ..model.tagger import load_model
from .common import load_split, minimise, resume_point
from .config import TrainConfig, file_sha256

RERANK_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 1000.0)  # tried on dev; 1000: the cross-encoder decides
RERANK_MARGINS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, math.inf)  # the ranker's lead past which it decides alone


def candidate_rows(records):
    """Per statement with a gold holder: (candidate names, feature rows, gold holder, baseline guess)."""
    found = gazetteer()
    for r in records:
        spans = [s for s in r["spans"] if s.get("holder")]
        if not spans:
            continue
        mentions, bounds = found.mentions(r["text"]), sentence_bounds(r["text"])
        for s in spans:
            names, rows = candidate_features(r["text"], s, mentions, bounds)
            yield names, rows, s["holder"], nearest_preceding_actor(r["text"], s, mentions)


def with_holders(records):
    """(texts, their statements that have a gold holder, sentence bounds), documents without any
    left out: segmented once, for every ranker scored on them."""
    kept = [(r["text"], [s for s in r["spans"] if s.get("holder")]) for r in records]
    kept = [(t, spans) for t, spans in kept if spans]
    return [t for t, _ in kept], [spans for _, spans in kept], [sentence_bounds(t) for t, _ in kept]


def guessed_holders(ranker: HolderRanker, docs, pair_probs=None) -> list[str]:
    """The holder the ranker, as `diplotag tag` runs it, gives each statement of `docs` (from
    `with_holders`); it predicts on copies, so the gold stays."""
    texts, spans, bounds = docs
    guesses = [[dict(s) for s in doc] for doc in spans]
    ranker.predict(texts, guesses, bounds, pair_probs)
    return [g["holder"] for doc in guesses for g in doc]


def right_holders(ranker: HolderRanker, docs, pair_probs=None) -> int:
    """How many statements of `docs` (from `with_holders`) the ranker gives their gold holder."""
    return sum(g == s["holder"] for g, s in zip(guessed_holders(ranker, docs, pair_probs), (s for doc in docs[1] for s in doc)))


def holder_accuracy(ranker: HolderRanker, records) -> dict:
    """Accuracy on gold statements (gold stance as input) of the ranker and of the baseline, and
    how often the gold holder was a candidate at all (the ceiling the gazetteer sets)."""
    baseline = reachable = n = 0
    for names, _, gold, guess in candidate_rows(records):
        baseline, reachable, n = baseline + (guess == gold), reachable + (gold in names), n + 1
    right = right_holders(ranker, with_holders(records))
    return {"holder_accuracy": round(right / max(n, 1), 4), "baseline_accuracy": round(baseline / max(n, 1), 4),
            "gold_among_candidates": round(reachable / max(n, 1), 4), "statements": n}


def cheapest_margin(ranker: HolderRanker, docs, pair_probs) -> float:
    """The smallest lead of the ranker past which it decides alone and still gives as many statements
    of `docs` their gold holder as with the cross-encoder asked everywhere: the cross-encoder, the
    costliest step of tagging a statement, then runs only where it pays. (The rule before, "a lead it
    never overturns", also kept leads where its overturns netted nothing.)"""
    ranker.rerank_margin = math.inf
    everywhere = right_holders(ranker, docs, pair_probs)

    def right_at(margin):
        ranker.rerank_margin = margin
        return right_holders(ranker, docs, pair_probs)
    return next(m for m in RERANK_MARGINS if right_at(m) >= everywhere)  # the last margin, infinity, always is


def rerank_pairs(ranker: HolderRanker, records) -> list[dict]:
    """The cross-encoder's examples: each gold statement's top `rerank_top` candidates by the
    ranker (what it will see in `diplotag tag`), labelled 1 for the gold holder."""
    texts, spans, bounds = with_holders(records)
    return [{"first": first, "second": second, "label": int(names[i] == s["holder"]), "statement": k}
            for k, (s, names, _, pairs, top) in enumerate(ranker.candidates(texts, spans, bounds, ranker.rerank_top))
            for i, (first, second) in zip(top, pairs)]


def train_reranker(cfg: TrainConfig, ranker: HolderRanker, resume: bool, started: float):
    """Fine-tune the cross-encoder into `<output_dir>/reranker` (or, with `reranker_from`, keep one
    trained before); returns its dev metrics and its probabilities for the dev pairs (looked up by
    pair), from the best checkpoint."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    from .common import base_path, load_base, train_sequence_classifier, training_arguments, with_lora

    xcfg = cfg.model_copy(update={"labels": ["other", HOLDS], "output_dir": cfg.output_dir / RERANKER_DIR})
    checkpoint = resume_point(xcfg, resume)
    set_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_path(cfg))
    splits, groups = {}, {}
    for name, path in (("train", cfg.train_file), ("dev", cfg.dev_file))[1 if cfg.reranker_from else 0:]:
        rows = rerank_pairs(ranker, load_split(cfg, path, "label"))
        groups[name] = [r.pop("statement") for r in rows]
        if name == "dev":
            dev_pairs = [(r["first"], r["second"]) for r in rows]
        splits[name] = Dataset.from_list(rows).map(
            lambda b: tokenizer(b["first"], b["second"], truncation="only_second", max_length=cfg.max_length),
            batched=True, remove_columns=["first", "second"])
    last = {}

    def metrics(pred):  # per statement, the candidate it scores highest should be the gold holder
        logits, gold = pred
        p = torch.from_numpy(np.asarray(logits, dtype=np.float32)).softmax(-1)[:, 1].numpy()
        last["p"] = p
        best = {}
        for k, pk, y in zip(groups["dev"], p, gold):
            if k not in best or pk > best[k][0]:
                best[k] = (pk, y)
        return {"holder_accuracy": float(np.mean([y for _, y in best.values()])),
                "accuracy": float(np.mean((p > 0.5) == np.asarray(gold)))}

    def card():
        return (f"A cross-encoder over the holder ranker's top {cfg.rerank_top} candidates of each statement: "
                f"{len(splits['train'])} train pairs from {len(set(groups['train']))} statements; dev: "
                f"{len(splits['dev'])} pairs. `holder_accuracy`: the statements whose top-scored candidate "
                f"is the gold holder, this model alone.\n")

    args = training_arguments(xcfg, "eval_holder_accuracy")
    if cfg.reranker_from:  # kept: copied into the run as it is, and scored on the dev pairs this ranker gives
        from transformers import DataCollatorWithPadding, Trainer

        shutil.rmtree(xcfg.output_dir, ignore_errors=True)  # no files of another run beside it (it lies elsewhere)
        shutil.copytree(cfg.reranker_from, xcfg.output_dir, ignore=shutil.ignore_patterns("checkpoint*"))
        kept = Trainer(model=load_model(cfg.reranker_from, AutoModelForSequenceClassification), args=args,
                       eval_dataset=splits["dev"], processing_class=tokenizer,
                       data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=metrics)
        dev = kept.evaluate()
        shutil.rmtree(args.output_dir, ignore_errors=True)  # nothing trained, nothing saved there
    else:
        model = load_base(AutoModelForSequenceClassification, xcfg, num_labels=2, id2label={0: "other", 1: HOLDS},
                          label2id={"other": 0, HOLDS: 1})
        model = with_lora(model, xcfg, "SEQ_CLS", head="classifier")
        dev = train_sequence_classifier(xcfg, args, model, tokenizer, splits, metrics, card, started, checkpoint)
    lookup = dict(zip(dev_pairs, last["p"]))
    return dev, lambda pairs: [lookup[p] for p in pairs]


def fit_ranker(train: list, weight_decay: float, hidden_units: int = 0, seed: int = 42) -> dict:
    """The ranker's weights (`HolderRanker`'s keyword arguments), fitted on `candidate_rows` whose
    gold holder is a candidate: linear, plus `hidden_units` tanh units where asked."""
    width = max(len(names) for names, *_ in train)
    x = torch.zeros(len(train), width, len(FEATURES))
    mask = torch.full((len(train), width), float("-inf"))
    gold = torch.tensor([names.index(g) for names, _, g, _ in train])
    for i, (names, rows, _, _) in enumerate(train):
        x[i, :len(names)], mask[i, :len(names)] = torch.from_numpy(rows), 0.0
    start = torch.Generator().manual_seed(seed)  # the hidden layer's: small random weights, so that its units differ
    w = torch.zeros(len(FEATURES), requires_grad=True)
    into = (0.1 * torch.randn(len(FEATURES), hidden_units, generator=start)).requires_grad_()
    bias = torch.zeros(hidden_units, requires_grad=True)
    out = (0.1 * torch.randn(hidden_units, generator=start)).requires_grad_()
    score = lambda: x @ w + torch.tanh(x @ into + bias) @ out
    penalty = lambda: sum((p ** 2).sum() for p in (w, into, out))
    minimise([w, into, bias, out] if hidden_units else [w],
             lambda: torch.nn.functional.cross_entropy(score() + mask, gold) + weight_decay * penalty(),
             max_iter=500 if not hidden_units else 300)  # 300 and 800 iterations fitted the units alike (train CV)
    fitted = {"weights": {f: round(float(v), 6) for f, v in zip(FEATURES, w.detach())}}
    if hidden_units:
        fitted["hidden"] = {"features": {f: [round(float(v), 6) for v in row] for f, row in zip(FEATURES, into.detach())},
                            "bias": [round(float(v), 6) for v in bias.detach()],
                            "out": [round(float(v), 6) for v in out.detach()]}
    return fitted


def predicted_holders(records, fitted_on=None, folds: int = 5, weight_decay: float = 1e-4) -> list[dict]:
    """`records` with each statement's `holder` replaced by the one a ranker (alone, reading the
    gold stance) gives it: fitted on `fitted_on`, or, without it, on the other `folds` - 1 folds of
    `records` (out of fold). Holders about as wrong as `diplotag tag`'s on unseen documents, for a
    stance model that learns to read them (`holder_in_input`); a statement that records none keeps
    none. The ranker is linear, as when that stance model was tried (`diplotag tag`'s has tanh units
    and a cross-encoder now, a point or two better on dev)."""
    out = [dict(r, spans=[dict(s) for s in r["spans"]]) for r in records]
    for k in range(1 if fitted_on is not None else folds):
        held = [i for i in range(len(records)) if fitted_on is not None or i % folds == k]
        train = fitted_on if fitted_on is not None else [r for i, r in enumerate(records) if i % folds != k]
        ranker = HolderRanker(**fit_ranker([t for t in candidate_rows(train) if t[2] in t[0]], weight_decay))
        guesses = [[dict(s) for s in records[i]["spans"]] for i in held]
        ranker.predict([records[i]["text"] for i in held], guesses)
        for i, doc in zip(held, guesses):
            for s, g in zip(out[i]["spans"], doc):
                s["holder"] = g["holder"] if s.get("holder") else None
    return out


def train_holder(cfg: TrainConfig, resume: bool = False) -> dict:
    started = time.time()
    train = [t for t in candidate_rows(load_split(cfg, cfg.train_file, "label")) if t[2] in t[0]]
    fitted = fit_ranker(train, cfg.weight_decay if cfg.ranker_weight_decay is None else cfg.ranker_weight_decay,
                        cfg.ranker_hidden, cfg.seed)
    # no bias: it shifts every candidate alike, and a softmax ignores it
    ranker = HolderRanker(**fitted, rerank_top=cfg.rerank_top, context_sentences=cfg.context_sentences,
                          head_words=cfg.head_words)
    dev_records = load_split(cfg, cfg.dev_file, "label")
    dev = {f"eval_{k}": v for k, v in holder_accuracy(ranker, dev_records).items()}
    saved = {**fitted, "bias": 0.0}
    if cfg.rerank_top:
        reranker_dev, dev_probs = train_reranker(cfg, ranker, resume, started)
        right, dev_docs = {}, with_holders(dev_records)  # dev statements given their gold holder, by weight
        for weight in RERANK_WEIGHTS:
            ranker.rerank_weight = weight
            right[weight] = right_holders(ranker, dev_docs, dev_probs)
        ranker.rerank_weight = max(right, key=right.get)  # the first best: the ranker leads on ties
        if ranker.rerank_weight > 0:
            ranker.rerank_margin = cheapest_margin(ranker, dev_docs, dev_probs)
            right[ranker.rerank_weight] = right_holders(ranker, dev_docs, dev_probs)  # as shipped: at that margin
        dev = {"eval_holder_accuracy_ranker_alone": dev["eval_holder_accuracy"],
               "eval_holder_accuracy_cross_encoder_alone": round(reranker_dev["eval_holder_accuracy"], 4),
               **dev, "eval_holder_accuracy": round(right[ranker.rerank_weight] / dev["eval_statements"], 4),
               "eval_rerank_weight": ranker.rerank_weight}
        margin = ranker.rerank_margin if math.isfinite(ranker.rerank_margin) else None  # JSON has no infinity
        if margin is not None:
            dev["eval_rerank_margin"] = margin
        saved.update(rerank_top=cfg.rerank_top, rerank_weight=ranker.rerank_weight, rerank_margin=margin,
                     context_sentences=cfg.context_sentences, head_words=cfg.head_words)
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "holder_ranker.json").write_text(json.dumps(saved, indent=1))
    (out / "diplotag_config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    stamp = {"task": "holder", "config_sha256": cfg.sha256(), "data_sha256": file_sha256(cfg.train_file, cfg.dev_file),
             "train_file": str(cfg.train_file), "dev_file": str(cfg.dev_file), "train_statements": len(train),
             "train_seconds": round(time.time() - started, 1), "dev_metrics": dev}
    (out / "stamp.json").write_text(json.dumps(stamp, indent=1))
    rows = "\n".join(f"| {k} | {v} |" for k, v in dev.items())
    coefs = "\n".join(f"| {k} | {v:+.3f} |" for k, v in fitted["weights"].items())
    units = (f"The {cfg.ranker_hidden} tanh units' weights, which carry much of the effect, are in "
             f"`holder_ranker.json` (`hidden`).\n\n" if cfg.ranker_hidden else "")
    rerank = (f" A cross-encoder (`{RERANKER_DIR}/`, fine-tuned from `{cfg.base_model}`"
              f"{'; kept from ' + str(cfg.reranker_from) + ', its own stamp inside' if cfg.reranker_from else ''}) re-scores its top "
              f"{cfg.rerank_top} candidates, its log-odds weighted {ranker.rerank_weight}, unless the ranker leads by "
              f"more than {ranker.rerank_margin} (both fitted on dev)."
              if cfg.rerank_top else "")
    (out / "README.md").write_text(
        f"# diplotag holder ranker\n\nRanks the actors a document names (gazetteer `data/holders.tsv`) and `none` "
        f"as the holder of each statement: a conditional logit over {len(FEATURES)} position features"
        f"{f' (linear, plus {cfg.ranker_hidden} tanh units)' if cfg.ranker_hidden else ''}, fitted by "
        f"`diplotag train holder` on {len(train)} train statements.{rerank}\n\n## Dev (gold statements)\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n\n## Linear weights\n\n{units}| feature | weight |\n|---|---|\n{coefs}\n\n"
        f"data sha256 `{stamp['data_sha256']}`, config sha256 `{stamp['config_sha256']}`\n")
    return dev
