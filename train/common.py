"""What the tagger and stance training share: records, hardware, LoRA, saving, the model card."""
import json
import os
import platform
import time
from pathlib import Path

import torch
import yaml
from transformers import EarlyStoppingCallback, TrainingArguments

from ..data.convert import read_labelled_texts, read_records
from ..model.base import resolve_base
from .config import TrainConfig, file_sha256


def load_split(cfg: TrainConfig, path: Path, label_key: str) -> list[dict]:
    """Records of a split, refusing any label (or stance, or class) that the config does not
    list; `max_train_docs` cuts the train split only."""
    found = {}
    if cfg.task == "classifier":  # `{"text", "label"}` records, one class each
        records = read_labelled_texts(path)
        for r in records:
            found.setdefault(r["label"], r["id"])
    else:
        records = read_records(path, cfg.data_format)
        for r in records:
            for s in r["spans"]:
                found.setdefault(s.get(label_key), r["id"])
    unknown = {k: v for k, v in found.items() if k not in cfg.labels}
    if unknown:
        listed = ", ".join(f"{k!r} (first in {v})" for k, v in unknown.items())
        raise ValueError(f"{path}: {label_key}s not in the config's labels {cfg.labels}: {listed}")
    if cfg.max_train_docs and path == cfg.train_file:
        if cfg.task == "classifier":  # classes come in blocks (data/gate: the corpus, then off-topic)
            import random

            records = random.Random(cfg.seed).sample(records, len(records))
        return records[: cfg.max_train_docs]
    return records


def check_before_training(cfg: TrainConfig) -> None:
    """What can be checked before hours of training: every label (or stance) of both splits is in
    the config, and `max_length` fits the base model's positions (never clamped silently)."""
    from transformers import AutoConfig

    if cfg.task != "holder" or cfg.rerank_top:  # the ranker alone has no base model
        base = AutoConfig.from_pretrained(base_path(cfg))
        limit = getattr(base, "max_position_embeddings", None)
        # RoBERTa-style models (MPNet among them) number positions from after the padding index
        roberta_like = base.model_type in ("roberta", "xlm-roberta", "mpnet", "camembert")
        usable = limit - (base.pad_token_id + 1 if roberta_like else 0) if limit else None
        if usable and cfg.max_length > usable:
            raise ValueError(f"max_length {cfg.max_length} is more than {cfg.base_model} has positions for ({usable})")
        if cfg.encoder_layers and cfg.encoder_layers > base.num_hidden_layers:
            raise ValueError(f"encoder_layers {cfg.encoder_layers} is more than {cfg.base_model} has ({base.num_hidden_layers})")
    for path in (cfg.train_file, cfg.dev_file):
        load_split(cfg, path, "stance" if cfg.task == "stance" else "label")


def resume_point(cfg: TrainConfig, resume: bool) -> str | None:
    """The checkpoint to resume from: the last complete one (a kill -9 mid-save leaves a folder
    without trainer_state.json, which is removed). A new run starts from no checkpoints: stale
    ones from an earlier run in the same folder would be resumed from, or kept over the new
    ones by the checkpoint rotation."""
    import shutil

    checkpoints = cfg.output_dir / "checkpoints"
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun/accelerate, only one process deletes
    if not resume:
        if main_process:
            shutil.rmtree(checkpoints, ignore_errors=True)
        return None
    complete = []
    for path in checkpoints.glob("checkpoint-*"):
        if (path / "trainer_state.json").exists():
            complete.append(path)
        elif main_process:
            shutil.rmtree(path)
    return str(max(complete, key=lambda p: int(p.name.split("-")[1]))) if complete else None


def bf16_available() -> bool:
    """bf16 where the GPU has it, or on a CPU with native bf16 instructions (AVX-512 BF16 / AMX):
    there autocast trains MiniLM-L6 about 2x faster than fp32 (5,100 against 2,700 tokens/s,
    batches of 8x256 on this project's 2-core machine)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def training_arguments(cfg: TrainConfig, metric: str) -> TrainingArguments:
    """Trainer settings from the config. Mixed precision is picked from the hardware (see
    `bf16_available`), else fp16 on GPU, else fp32. Under `accelerate launch` the same arguments
    run data-parallel over every process."""
    cuda = torch.cuda.is_available()
    bf16 = cfg.mixed_precision == "auto" and bf16_available()
    by = "steps" if cfg.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(cfg.output_dir / "checkpoints"),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size * 2,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of the total steps
        lr_scheduler_type="linear",
        eval_strategy=by, save_strategy=by, logging_strategy=by,
        eval_steps=cfg.eval_steps, save_steps=cfg.eval_steps, logging_steps=cfg.eval_steps,
        load_best_model_at_end=True, metric_for_best_model=metric, greater_is_better=True,
        save_total_limit=2,
        seed=cfg.seed, data_seed=cfg.seed,
        bf16=bf16, fp16=cuda and not bf16 and cfg.mixed_precision == "auto", use_cpu=not cuda,
        # several CPU processes (torchrun / accelerate's multi-CPU) talk over gloo
        ddp_backend="gloo" if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


def callbacks(cfg: TrainConfig) -> list:
    return [EarlyStoppingCallback(cfg.early_stopping_patience)] if cfg.early_stopping_patience else []


def train_sequence_classifier(cfg: TrainConfig, args, model, tokenizer, splits: dict, metrics, card, started: float,
                              checkpoint) -> dict:
    """What the stance model and the document classifier share: a `Trainer` over tokenized
    `splits` (train, dev) padded per batch, the best checkpoint scored on dev, then saved with its
    model card (`card()`, called after that last evaluation). Returns the dev metrics."""
    from transformers import DataCollatorWithPadding, Trainer

    trainer = Trainer(
        model=model, args=args,
        train_dataset=splits["train"], eval_dataset=splits["dev"], processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=metrics, callbacks=callbacks(cfg),
    )
    run = trainer.train(resume_from_checkpoint=checkpoint)
    dev = {k: v for k, v in trainer.evaluate().items() if k.startswith("eval_") and isinstance(v, float)}
    if trainer.is_world_process_zero():
        save_trained(trainer, tokenizer, cfg, dev, started, card(), train_tokens_per_second(run, splits["train"]))
    return dev


def with_lora(model, cfg: TrainConfig, task_type: str, head: str):
    """Full fine-tuning returns the model as it is (word embeddings frozen if the config says so);
    LoRA wraps it so that only low-rank adapters and the new head (`head`) train — a few MB to
    ship instead of the whole encoder."""
    if cfg.finetune == "full":
        if cfg.freeze_word_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(task_type=task_type, r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, layers_to_transform=cfg.lora.layers_to_transform,
                      modules_to_save=[head])
    return get_peft_model(model, lora)


def minimise(param: torch.Tensor | list[torch.Tensor], objective, max_iter: int = 200):
    """`param` (a tensor with requires_grad, or a list of them) at the minimum of `objective()`, by
    L-BFGS with a strong-Wolfe line search: the small fits after training (calibration, the holder
    ranker)."""
    optimizer = torch.optim.LBFGS(param if isinstance(param, list) else [param], max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        value = objective()
        value.backward()
        return value

    optimizer.step(closure)
    return param.detach() if isinstance(param, torch.Tensor) else [p.detach() for p in param]


def optimizer_with_head_rate(model, cfg: TrainConfig, head: str):
    """AdamW with the Trainer's weight-decay rule, the classification head (`head`) at
    `head_learning_rate_multiplier` times the encoder's rate. The Trainer adds its schedule."""
    from transformers.trainer_pt_utils import get_parameter_names

    decay = set(get_parameter_names(model, [torch.nn.LayerNorm], ["bias", "LayerNorm.weight", "layernorm", "norm"]))
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = f"{head}." in name
        key = (is_head, name in decay)
        groups.setdefault(key, {"params": [], "weight_decay": cfg.weight_decay if name in decay else 0.0,
                                "lr": cfg.learning_rate * (cfg.head_learning_rate_multiplier if is_head else 1.0)})
        groups[key]["params"].append(p)
    return torch.optim.AdamW(list(groups.values()), lr=cfg.learning_rate)


def train_tokens_per_second(train_output, dataset) -> float:
    """Real (non-padding) tokens trained on per second of training, all epochs run."""
    tokens = sum(len(x) for x in dataset["input_ids"])
    return round(tokens * train_output.metrics["epoch"] / train_output.metrics["train_runtime"], 1)


def in_training(log_history: list[dict]) -> list[dict]:
    """The log entries of the training loop: the final evaluation of the best checkpoint, logged
    after the loop's summary (`train_runtime`), would repeat an epoch."""
    end = next((i for i, e in enumerate(log_history) if "train_runtime" in e), len(log_history))
    return log_history[:end]


EPOCH_METRICS = ("eval_f1", "eval_overlap_f1", "eval_token_f1", "eval_macro_f1", "eval_holder_accuracy", "eval_accuracy")


def save_trained(trainer, tokenizer, cfg: TrainConfig, metrics: dict, started: float, extra_card: str = "",
                 tokens_per_second: float | None = None) -> Path:
    """Save the best model as a standard Hugging Face folder (merged weights in safetensors,
    config.json with id2label, tokenizer), the LoRA adapter beside it in `adapter/`, the resolved
    config, a stamp of the data and config hashes, and a model card."""
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    model = trainer.model
    if cfg.finetune == "lora":
        model.save_pretrained(out / "adapter")
        # The adapter names its base as given in the config (a hub id), not as the local path it
        # was resolved to here, so the folder loads on any machine.
        adapter_config = out / "adapter" / "adapter_config.json"
        adapter_config.write_text(json.dumps(dict(json.loads(adapter_config.read_text()),
                                                  base_model_name_or_path=cfg.base_model), indent=1))
        tokenizer.save_pretrained(out / "adapter")
        model.base_model.model.config.save_pretrained(out / "adapter")  # id2label for the adapter form
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "diplotag_config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    stamp = {"task": cfg.task, "config_sha256": cfg.sha256(),
             "data_sha256": file_sha256(cfg.train_file, cfg.dev_file),
             "train_file": str(cfg.train_file), "dev_file": str(cfg.dev_file),
             "base_model": cfg.base_model, "finetune": cfg.finetune,
             "train_seconds": round(time.time() - started, 1), "train_tokens_per_second": tokens_per_second,
             "dev_metrics": metrics,
             # every evaluation of the run: how fast it left the all-O start, and where it peaked
             "dev_per_epoch": [{k: round(v, 4) for k, v in e.items()
                                if k == "epoch" or k in EPOCH_METRICS or k.startswith(("eval_recall_", "eval_gate_"))}
                               for e in in_training(trainer.state.log_history) if "eval_loss" in e]}
    (out / "stamp.json").write_text(json.dumps(stamp, indent=1))
    (out / "README.md").write_text(model_card(cfg, stamp, extra_card))
    return out


def model_card(cfg: TrainConfig, stamp: dict, extra: str) -> str:
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in stamp["dev_metrics"].items())
    what = {"tagger": "token classification (BIO tags over statement spans)",
            "stance": "sequence classification of a marked statement's stance",
            "classifier": "document classification (the text's first tokens)",
            "holder": "sequence-pair classification: does the candidate (first text) hold the statement marked in the second"}[cfg.task]
    return f"""---
library_name: transformers
pipeline_tag: {"token-classification" if cfg.task == "tagger" else "text-classification"}
base_model: {cfg.base_model}
tags: [diplotag]
---
# diplotag {cfg.task}

{what.capitalize()}, fine-tuned from `{cfg.base_model}` ({cfg.finetune} fine-tuning) by
`diplotag train {cfg.task}`. Labels: {", ".join(cfg.labels)}.

## Dev metrics (best checkpoint)

| metric | value |
|---|---|
{rows}

{extra}
## Provenance

- train file: `{cfg.train_file}`; dev file: `{cfg.dev_file}`
- data sha256 (train + dev): `{stamp["data_sha256"]}`
- config sha256: `{stamp["config_sha256"]}`
- training time: {stamp["train_seconds"]} s ({stamp["train_tokens_per_second"]} tokens/s) on {platform.machine()} ({torch.get_num_threads()} threads,
  {"CUDA" if torch.cuda.is_available() else "CPU"}), torch {torch.__version__}

## Config

```yaml
{yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)}```

## Use

```python
from transformers import pipeline
nlp = pipeline("{"token-classification" if cfg.task == "tagger" else "text-classification"}", model="PATH")
```
"""


def stamp_is_current(stamp: dict, cfg: TrainConfig) -> bool:
    """Whether a model's stamp matches this config and the data files as they are now."""
    return (stamp.get("config_sha256") == cfg.sha256()
            and stamp.get("data_sha256") == file_sha256(cfg.train_file, cfg.dev_file))


def ship_as_default(run_dir: Path, dest: Path) -> None:
    """Copy a run's small form to the shipped default folder (the rest comes from the base
    package, so nothing is downloaded). A LoRA run ships its adapter and head. A full run ships
    every weight but the frozen word embeddings, in bf16 (about 22 MB for MiniLM-L6): its
    config.json names the base those embeddings come from (`model.tagger.load_model`)."""
    import shutil

    from safetensors.torch import load_file, save_file

    from ..model.gate import PREFILTER_FILES
    from ..model.holder import RERANKER_DIR
    from ..model.tagger import EMBEDDINGS_FROM_BASE

    settings = yaml.safe_load((run_dir / "diplotag_config.yaml").read_text())
    if dest.exists():
        shutil.rmtree(dest)
    if (run_dir / "holder_ranker.json").exists():  # a few numbers, shipped as they are, and its cross-encoder
        dest.mkdir(parents=True)
        for name in ("holder_ranker.json", "stamp.json", "README.md", "diplotag_config.yaml"):
            shutil.copy(run_dir / name, dest / name)
        if (run_dir / RERANKER_DIR).is_dir():
            ship_as_default(run_dir / RERANKER_DIR, dest / RERANKER_DIR)
        return
    if (run_dir / "adapter_config.json").exists():  # shipped form already (a holder run's kept cross-encoder)
        shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("checkpoint*"))
        return
    if (run_dir / "adapter").is_dir():
        shutil.copytree(run_dir / "adapter", dest)
        # the calibration fitted after training lives in the run's config.json, not the adapter's
        fitted = {k: v for k, v in json.loads((run_dir / "config.json").read_text()).items() if k.startswith("diplotag_")}
        config = json.loads((dest / "config.json").read_text())
        (dest / "config.json").write_text(json.dumps(dict(config, **fitted), indent=2))
    elif settings.get("finetune") == "full" and settings.get("freeze_word_embeddings"):
        dest.mkdir(parents=True)
        weights = load_file(run_dir / "model.safetensors")
        kept = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous()
                for k, v in weights.items() if not k.endswith("word_embeddings.weight")}
        save_file(kept, dest / "model.safetensors", metadata={"format": "pt"})
        config = json.loads((run_dir / "config.json").read_text())
        (dest / "config.json").write_text(json.dumps(dict(config, **{EMBEDDINGS_FROM_BASE: settings["base_model"]}), indent=2))
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            if (run_dir / name).exists():
                shutil.copy(run_dir / name, dest / name)
    else:
        raise ValueError(f"{run_dir}: only a LoRA run, or a full run with freeze_word_embeddings, can ship in git")
    for name in ("stamp.json", "README.md", "diplotag_config.yaml"):
        shutil.copy(run_dir / name, dest / name)
    for name in PREFILTER_FILES:  # a classifier's word prefilter, where it has one
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, dest / name)


def base_path(cfg: TrainConfig) -> str:
    return resolve_base(cfg.base_model)


def load_base(auto_cls, cfg: TrainConfig, **head):
    """The base model with a new head (`head`: num_labels, id2label, label2id); with
    `encoder_layers`, only its first N layers (the config saved with the model says so, and
    loading it takes the same N layers)."""
    layers = {"num_hidden_layers": cfg.encoder_layers} if cfg.encoder_layers else {}
    return auto_cls.from_pretrained(base_path(cfg), **head, **layers)
