"""The re3d benchmark: train the generic tagger on re3d (configs/re3d.yaml, CoNLL read from
../shared) with several seeds, score each on the test split with seqeval's macro F1 over
the CoNLL tokens, and compare with the ConfliBERT paper's Table 3."""
import json
import statistics
from pathlib import Path

from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2

from ..data.convert import read_conll
from ..train.config import load_config
from .metrics import word_tags

PAPER = {"BERT-base uncased": 63.44, "BERT-base cased": 62.46, "ConfliBERT-cont uncased": 64.40,
         "ConfliBERT-cont cased": 66.20, "ConfliBERT-scr uncased": 66.40, "ConfliBERT-scr cased": 64.23}


def score_on_conll(model_dir, test_file) -> dict:
    """Macro F1 over the file's own tokens: each token takes the predicted tag of the word
    that starts where it starts."""
    from ..model.tagger import Tagger

    tagger = Tagger.from_pretrained(model_dir, device="auto")  # windows as in training
    gold = read_conll(test_file)
    pred = tagger.find_spans([r["text"] for r in gold])
    y_true = [word_tags(r["text"], r["spans"], r["spans"]) for r in gold]
    y_pred = [word_tags(r["text"], p, r["spans"]) for r, p in zip(gold, pred)]
    return {"test_macro_f1": f1_score(y_true, y_pred, average="macro"),          # the paper's measure
            "test_macro_f1_strict": f1_score(y_true, y_pred, average="macro", mode="strict", scheme=IOB2),
            "test_micro_f1": f1_score(y_true, y_pred),
            "report": classification_report(y_true, y_pred, digits=4)}


def run_re3d(config_path, seeds, overrides=(), out_json=None, command="") -> dict:
    from ..train.tagger import train_tagger

    runs = []
    for seed in seeds:
        cfg = load_config(config_path, [*overrides, f"seed={seed}"])
        cfg = cfg.model_copy(update={"output_dir": cfg.output_dir / f"seed-{seed}"})
        dev = train_tagger(cfg)
        stamp = json.loads((cfg.output_dir / "stamp.json").read_text())
        test = score_on_conll(cfg.output_dir, cfg.dev_file.with_name("test.txt"))
        state = json.loads(max((cfg.output_dir / "checkpoints").glob("checkpoint-*/trainer_state.json"),
                               key=lambda p: int(p.parent.name.split("-")[1])).read_text())
        runs.append({"seed": seed, "dev_macro_f1": dev.get("eval_macro_f1"), "epochs_run": round(state["epoch"], 1),
                     "train_seconds": stamp["train_seconds"], **{k: v for k, v in test.items() if k != "report"}})
        print(f"seed {seed}: test macro F1 {test['test_macro_f1']:.4f}\n{test['report']}")
    f1s = [r["test_macro_f1"] for r in runs]
    result = {"command": command, "base_model": cfg.base_model, "finetune": cfg.finetune,
              "config": cfg.model_dump(mode="json"), "runs": runs,
              "mean": statistics.mean(f1s), "stdev": statistics.stdev(f1s) if len(f1s) > 1 else 0.0, "paper": PAPER}
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(result, indent=1))
    return result
