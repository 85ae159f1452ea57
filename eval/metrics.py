"""Scores of predicted records against gold records (both corpus records, same ids, same order).

- spans: seqeval entity P/R/F1 in strict IOB2 mode, over word tokens (white-space tokens
  cut at every gold and predicted span edge, so char spans map to tags exactly);
  nervaluate's strict / exact / partial / type-overlap schema;
- stance: accuracy and macro F1 on gold spans (stance model given gold spans), and end to
  end (a statement counts when label, offsets and stance are all right);
- confusion matrices of labels (over overlapping spans, with O for missed / spurious) and
  of stance; calibration (expected calibration error) of span and stance scores.
"""
import numpy as np
from nervaluate import Evaluator
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from ..data.convert import bio_tags, word_tokens
from ..data.spans import match_spans, overlaps, prf

STANCES = ["support", "oppose", "neutral"]


def word_tags(text: str, spans, edges) -> list[str]:
    """BIO tags of `text`'s word tokens (cut at `edges`) for `spans`."""
    return bio_tags(word_tokens(text, 0, len(text), edges), spans)


def seqeval_scores(gold, pred, labels) -> dict:
    y_true, y_pred = [], []
    for g, p in zip(gold, pred):
        edges = g["spans"] + p["spans"]
        y_true.append(word_tags(g["text"], g["spans"], edges))
        y_pred.append(word_tags(g["text"], p["spans"], edges))
    report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    return {k: {m: round(float(v[m]), 4) for m in ("precision", "recall", "f1-score", "support")}
            for k, v in report.items() if k in labels or k in ("micro avg", "macro avg")}


def nervaluate_scores(gold, pred, labels) -> dict:
    # nervaluate reads `end` as the last index, inclusive
    def conv(recs):
        return [[{"label": s["label"], "start": s["start"], "end": s["end"] - 1} for s in r["spans"]] for r in recs]

    results = Evaluator(conv(gold), conv(pred), tags=list(labels), loader="dict").evaluate()
    pick = ("precision", "recall", "f1", "correct", "incorrect", "partial", "missed", "spurious")
    out = {"overall": {schema: {k: round(float(getattr(r, k)), 4) for k in pick}
                       for schema, r in results["overall"].items()}}
    for lab in labels:  # in the labels' order, not nervaluate's, so that result files diff cleanly
        out[lab] = {schema: round(float(r.f1), 4) for schema, r in results["entities"][lab].items()}
    return out


def label_confusion(gold, pred, labels) -> dict:
    names = list(labels) + ["O"]
    y_true, y_pred = [], []
    for g, p in zip(gold, pred):
        pairs, spurious = match_spans(g["spans"], p["spans"])
        for gs, ps in pairs:
            y_true.append(gs["label"])
            y_pred.append(ps["label"] if ps else "O")
        y_true += ["O"] * len(spurious)
        y_pred += [s["label"] for s in spurious]
    if not y_true:
        return {"labels": names, "matrix": [[0] * len(names) for _ in names]}
    return {"labels": names, "matrix": confusion_matrix(y_true, y_pred, labels=names).tolist()}


def expected_calibration_error(confidence, correct, bins=10) -> tuple[float, list]:
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    edges = np.linspace(0, 1, bins + 1)
    ece, table = 0.0, []
    for lo, hi in zip(edges, edges[1:]):
        inside = ((confidence > lo) | (lo == 0)) & (confidence <= hi)  # the first bin holds 0 too
        if inside.any():
            acc, conf = correct[inside].mean(), confidence[inside].mean()
            ece += inside.mean() * abs(acc - conf)
            table.append({"bin": [round(lo, 2), round(hi, 2)], "n": int(inside.sum()),
                          "accuracy": round(float(acc), 4), "confidence": round(float(conf), 4)})
    return round(float(ece), 4), table


def end_to_end(gold, pred) -> dict:
    """A predicted statement is right when label, offsets and stance all match (strict), or when
    label and stance match and the spans overlap (lenient); each gold statement matches one
    prediction at most."""
    def strict(a, b):
        return (a["start"], a["end"], a["label"], a.get("stance")) == (b["start"], b["end"], b["label"], b.get("stance"))

    def lenient(a, b):
        return overlaps(a, b) and a["label"] == b["label"] and a.get("stance") == b.get("stance")

    out = {}
    for mode, same in (("strict", strict), ("overlap", lenient)):
        hits = sum(p is not None for g, q in zip(gold, pred) for _, p in match_spans(g["spans"], q["spans"], same)[0])
        out[mode] = prf(hits, sum(len(q["spans"]) for q in pred), sum(len(g["spans"]) for g in gold))
    return out


def end_to_end_holder(gold, pred) -> dict:
    """A predicted statement is right when it overlaps a gold one of its label and names the same
    holder (one to one); only gold statements that record a holder count."""
    def same(a, b):
        return overlaps(a, b) and a["label"] == b["label"] and a.get("holder") == b.get("holder")

    gold = [dict(g, spans=[s for s in g["spans"] if s.get("holder")]) for g in gold]
    hits = sum(p is not None for g, q in zip(gold, pred) for _, p in match_spans(g["spans"], q["spans"], same)[0])
    return prf(hits, sum(len(q["spans"]) for q in pred), sum(len(g["spans"]) for g in gold))


def holder_scores(gold_holders, predicted, baseline, with_gold_stance=None) -> dict:
    """Holder accuracy on gold statements, beside the nearest-preceding-actor baseline's, and,
    where given, the holders predicted with the gold stance (what the stance model's errors cost)."""
    if not gold_holders:
        return {"n": 0}
    out = {"accuracy": round(accuracy_score(gold_holders, predicted), 4),
           "baseline_accuracy": round(accuracy_score(gold_holders, baseline), 4), "n": len(gold_holders)}
    if with_gold_stance is not None:
        out["accuracy_with_gold_stance"] = round(accuracy_score(gold_holders, with_gold_stance), 4)
    return out


def stance_scores(gold_stances, predicted, probabilities=None) -> dict:
    if not gold_stances:
        return {"n": 0}
    out = {"accuracy": round(accuracy_score(gold_stances, predicted), 4),
           "macro_f1": round(f1_score(gold_stances, predicted, labels=STANCES, average="macro", zero_division=0), 4),
           "confusion": {"labels": STANCES, "matrix": confusion_matrix(gold_stances, predicted, labels=STANCES).tolist()},
           "n": len(gold_stances)}
    if probabilities is not None:
        conf = [max(p) for p in probabilities]
        out["ece"], out["reliability"] = expected_calibration_error(conf, np.equal(gold_stances, predicted))
    return out


def span_calibration(gold, pred) -> dict:
    conf, correct = [], []
    for g, p in zip(gold, pred):
        exact = {(s["start"], s["end"], s["label"]) for s in g["spans"]}
        for s in p["spans"]:
            if "score" in s:
                conf.append(s["score"])
                correct.append((s["start"], s["end"], s["label"]) in exact)
    if not conf:
        return {}
    ece, table = expected_calibration_error(conf, correct)
    return {"ece": ece, "reliability": table, "n": len(conf)}
