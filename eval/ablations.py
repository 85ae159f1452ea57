"""`diplotag bench ablations`: the tagger's dev F1, per epoch and at its best checkpoint, in its
shipped form (full fine-tuning, word embeddings frozen, the head at ten times the encoder's rate)
against variants: the head at the encoder's rate, LoRA on every layer (the setting that read F1 0
for epochs under the old argmax metric), LoRA on the top three layers (the old shipped form), and
class weights. Every F1 is strict span F1 of decoded documents, as `diplotag tag` outputs them."""
import json
from pathlib import Path

from ..train.common import stamp_is_current
from ..train.config import load_config

VARIANTS = {"shipped (full, frozen word embeddings, head lr x10)": [],
            "head at the encoder's rate": ["head_learning_rate_multiplier=1"],
            "LoRA r16 on every layer, lr 1e-3": ["finetune=lora", "lora.layers_to_transform=null", "learning_rate=1.0e-3",
                                                 "head_learning_rate_multiplier=1"],
            "LoRA r16 on the top three layers, lr 1e-3 (shipped before)": ["finetune=lora", "learning_rate=1.0e-3",
                                                                           "head_learning_rate_multiplier=1"],
            "sqrt-inverse class weights": ["class_weighting=sqrt_inverse"]}


def document_scores(cfg) -> dict:
    """Dev scores of whole documents as `diplotag tag` decodes them (merged windows, valid IOB2,
    class-weight prior correction, shortest statement), not the Trainer's per-window argmax."""
    from ..data.schema import load_corpus
    from ..model.tagger import Tagger
    from .metrics import nervaluate_scores, seqeval_scores

    gold = load_corpus(cfg.dev_file)
    spans = Tagger.from_pretrained(cfg.output_dir, device="cpu").find_spans([r["text"] for r in gold])
    pred = [dict(r, spans=s) for r, s in zip(gold, spans)]
    micro = seqeval_scores(gold, pred, cfg.labels)["micro avg"]
    return {"precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1-score"],
            "partial_f1": nervaluate_scores(gold, pred, cfg.labels)["overall"]["partial"]["f1"]}


def run_ablations(config, only=None, retrain=False, out_json=None) -> dict:
    from ..train.tagger import train_tagger

    runs = []
    result = {"config": str(config), "runs": runs}
    for i, (name, sets) in enumerate(VARIANTS.items()):
        if only and i not in only:
            continue
        # the shipped form is what `make models` trained into runs/tagger: reused when its stamp is current
        cfg = load_config(config, [*sets] + ([f"output_dir=runs/ablations/{i}"] if sets else []))
        stamp_file = cfg.output_dir / "stamp.json"
        if retrain or not (stamp_file.exists() and stamp_is_current(json.loads(stamp_file.read_text()), cfg)):
            train_tagger(cfg)
        stamp = json.loads(stamp_file.read_text())
        runs.append({"name": name, "settings": " ".join(sets) or str(config),
                     "dev_metrics": stamp["dev_metrics"], "dev_per_epoch": stamp.get("dev_per_epoch"),
                     "train_seconds": stamp["train_seconds"],
                     "dev_documents": document_scores(cfg)})
        if out_json:  # after every run: an interrupted bench keeps what it finished
            Path(out_json).write_text(json.dumps(result, indent=1))
    return result
