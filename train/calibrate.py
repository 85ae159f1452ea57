"""Scores that mean what they say: fitted on dev after training, saved in each model's
config.json, applied by `Tagger`.

- Span scores (mean probability of a statement's tags) get Platt scaling: a logistic fit of
  "this predicted statement is exactly right" on the logit of the raw score.
- Stance scores get temperature scaling: one temperature dividing the logits, fitted by the
  negative log-likelihood of the gold stances of dev's gold statements.
"""
import json
from pathlib import Path

import numpy as np
import torch

from ..data.schema import load_corpus
from ..model.tagger import SPAN_CALIBRATION, STANCE_TEMPERATURE, Tagger
from .common import minimise


def fit_platt(scores, correct) -> list[float]:
    x = torch.tensor(np.log(np.clip(scores, 1e-6, 1 - 1e-6)) - np.log1p(-np.clip(scores, 1e-6, 1 - 1e-6)), dtype=torch.float32)
    y = torch.tensor(correct, dtype=torch.float32)
    ab = torch.tensor([1.0, 0.0], requires_grad=True)
    fitted = minimise(ab, lambda: torch.nn.functional.binary_cross_entropy_with_logits(ab[0] * x + ab[1], y))
    return [round(float(v), 5) for v in fitted]


def fit_temperature(probs, gold_index) -> float:
    logits = torch.log(torch.tensor(np.asarray(probs), dtype=torch.float32).clamp_min(1e-9))
    y = torch.tensor(gold_index)
    log_t = torch.zeros(1, requires_grad=True)
    return round(float(minimise(log_t, lambda: torch.nn.functional.cross_entropy(logits / log_t.exp(), y)).exp()), 5)


def calibrate(run_root: Path, dev_file: Path) -> dict:
    """Fit both calibrations of the models under `run_root` (tagger/, stance/) on dev and write
    them into their config.json files. Returns the fitted values."""
    dev = load_corpus(dev_file)
    tagger = Tagger.from_pretrained(run_root, device="cpu", calibrated=False)
    texts = [r["text"] for r in dev]
    found = tagger.find_spans(texts)
    scores, correct = [], []
    for r, spans in zip(dev, found):
        exact = {(s["start"], s["end"], s["label"]) for s in r["spans"]}
        for s in spans:
            scores.append(s["score"])
            correct.append((s["start"], s["end"], s["label"]) in exact)
    fitted = {SPAN_CALIBRATION: fit_platt(scores, correct) if scores and 0 < sum(correct) < len(correct) else [1.0, 0.0]}
    if tagger.stance_model is not None:
        gold_spans = [[{k: s[k] for k in ("start", "end", "label")} for s in r["spans"]] for r in dev]
        if tagger.stance_reads_holder:  # as `diplotag tag` gives them: read again with the holders found
            tagger.predict_stance_and_holders(texts, gold_spans)
        else:
            tagger.predict_stance(texts, gold_spans)
        names = [tagger.stance_model.config.id2label[i] for i in range(len(tagger.stance_model.config.id2label))]
        probs = [[s["stance_scores"][n] for n in names] for doc in gold_spans for s in doc]
        gold = [names.index(s["stance"]) for r in dev for s in r["spans"]]
        fitted[STANCE_TEMPERATURE] = fit_temperature(probs, gold) if gold else 1.0
    for folder, key in (("tagger", SPAN_CALIBRATION), ("stance", STANCE_TEMPERATURE)):
        config = run_root / folder / "config.json"
        if key in fitted and config.exists():
            config.write_text(json.dumps(dict(json.loads(config.read_text()), **{key: fitted[key]}), indent=2))
    return fitted
