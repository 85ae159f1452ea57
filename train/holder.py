"""Fit the holder ranker (model/holder.py): a conditional logit — softmax over each statement's
candidates, the gold holder's log-probability maximised (L2-regularised, L-BFGS) — on the train
split; the dev split reports holder accuracy beside the nearest-preceding-actor baseline."""
import json
import time

import numpy as np
import yaml
import torch

from ..data.sentences import sentence_bounds
from ..model.holder import FEATURES, HolderRanker, candidate_features, gazetteer, nearest_preceding_actor
from .common import load_split, minimise
from .config import TrainConfig, file_sha256


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


def holder_accuracy(ranker: HolderRanker, records) -> dict:
    """Accuracy of the ranker and of the baseline on gold statements (gold stance as input), and
    how often the gold holder was a candidate at all (the ceiling the gazetteer sets)."""
    right = baseline = reachable = n = 0
    for names, rows, gold, guess in candidate_rows(records):
        right += names[int(np.argmax(rows @ ranker.w + ranker.bias))] == gold
        baseline, reachable, n = baseline + (guess == gold), reachable + (gold in names), n + 1
    return {"holder_accuracy": round(right / max(n, 1), 4), "baseline_accuracy": round(baseline / max(n, 1), 4),
            "gold_among_candidates": round(reachable / max(n, 1), 4), "statements": n}


def train_holder(cfg: TrainConfig, resume: bool = False) -> dict:
    started = time.time()
    train = [t for t in candidate_rows(load_split(cfg, cfg.train_file, "label")) if t[2] in t[0]]
    width = max(len(names) for names, *_ in train)
    x = torch.zeros(len(train), width, len(FEATURES))
    mask = torch.full((len(train), width), float("-inf"))
    gold = torch.tensor([names.index(g) for names, _, g, _ in train])
    for i, (names, rows, _, _) in enumerate(train):
        x[i, :len(names)], mask[i, :len(names)] = torch.from_numpy(rows), 0.0
    w = torch.zeros(len(FEATURES), requires_grad=True)
    minimise(w, lambda: torch.nn.functional.cross_entropy(x @ w + mask, gold) + cfg.weight_decay * (w ** 2).sum(),
             max_iter=500)
    weights = {f: round(float(v), 6) for f, v in zip(FEATURES, w.detach())}
    ranker = HolderRanker(weights)  # a bias shifts every candidate alike: a softmax ignores it
    dev = {f"eval_{k}": v for k, v in holder_accuracy(ranker, load_split(cfg, cfg.dev_file, "label")).items()}
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "holder_ranker.json").write_text(json.dumps({"weights": weights, "bias": 0.0}, indent=1))
    (out / "diplotag_config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    stamp = {"task": "holder", "config_sha256": cfg.sha256(), "data_sha256": file_sha256(cfg.train_file, cfg.dev_file),
             "train_file": str(cfg.train_file), "dev_file": str(cfg.dev_file), "train_statements": len(train),
             "train_seconds": round(time.time() - started, 1), "dev_metrics": dev}
    (out / "stamp.json").write_text(json.dumps(stamp, indent=1))
    rows = "\n".join(f"| {k} | {v} |" for k, v in dev.items())
    coefs = "\n".join(f"| {k} | {v:+.3f} |" for k, v in weights.items())
    (out / "README.md").write_text(
        f"# diplotag holder ranker\n\nRanks the actors a document names (gazetteer `data/holders.tsv`) and `none` "
        f"as the holder of each statement: a conditional logit over {len(FEATURES)} position features, fitted by "
        f"`diplotag train holder` on {len(train)} train statements.\n\n## Dev (gold statements)\n\n| metric | value |\n"
        f"|---|---|\n{rows}\n\n## Weights\n\n| feature | weight |\n|---|---|\n{coefs}\n\n"
        f"data sha256 `{stamp['data_sha256']}`, config sha256 `{stamp['config_sha256']}`\n")
    return dev
