"""Matching span lists: the one rule every score in the project (evaluation, agreement, the
speed benchmark's comparison) uses to pair one side's spans with the other's."""


def overlaps(a, b) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def match_spans(gold_spans, pred_spans, same=overlaps):
    """One-to-one pairs of gold and predicted spans for which `same` holds, largest overlap first;
    returns (gold → its matched prediction or None, in gold order) and the unmatched predictions."""
    candidates = sorted(((min(g["end"], p["end"]) - max(g["start"], p["start"]), i, j)
                         for i, g in enumerate(gold_spans) for j, p in enumerate(pred_spans) if same(g, p)),
                        reverse=True)
    gold_to_pred, used = {}, set()
    for _, i, j in candidates:
        if i not in gold_to_pred and j not in used:
            gold_to_pred[i] = j
            used.add(j)
    pairs = [(g, pred_spans[gold_to_pred[i]] if i in gold_to_pred else None) for i, g in enumerate(gold_spans)]
    return pairs, [p for j, p in enumerate(pred_spans) if j not in used]


def prf(hits: int, n_pred: int, n_gold: int) -> dict:
    p, r = hits / n_pred if n_pred else 0.0, hits / n_gold if n_gold else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}
