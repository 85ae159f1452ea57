"""The training config: one YAML file, validated in full before any work starts.

Every field can be overridden from the command line with `--set key=value` (values
are read as YAML, so `--set epochs=3`, `--set lora.r=8`, `--set labels=[A,B]`).
The resolved config is written beside the model as `diplotag_config.yaml`.
"""
import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..model.gate import GATE_REJECTS


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = ["query", "key", "value", "dense"]
    layers_to_transform: list[int] | None = None       # None = every layer; the top ones train fastest


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Literal["tagger", "stance", "holder", "classifier"]
    base_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    train_file: Path
    dev_file: Path
    data_format: Literal["jsonl", "conll"] = "jsonl"
    labels: list[str] = Field(min_length=1)          # span labels (tagger), stances, or classes (classifier)
    output_dir: Path

    # the model
    finetune: Literal["full", "lora"] = "lora"
    lora: LoraSettings = LoraSettings()
    # full fine-tuning: the word-embedding matrix (half of MiniLM-L6) stays as in the base, so the
    # shipped form stores only the rest (in bf16) and takes the embeddings from the base package
    freeze_word_embeddings: bool = False
    # keep only the base's first N layers: a shallower encoder, N/L of the cost (the relevance gate
    # reads a document's lead, where a few layers tell the beat from sport or business)
    encoder_layers: int | None = Field(None, gt=0)
    max_length: int = Field(256, ge=16)
    stride: int = Field(64, ge=0)                      # tagger: token overlap between windows
    label_all_subtokens: bool = False                  # tagger: run_ner.py's --label_all_tokens
    class_weighting: Literal["none", "sqrt_inverse"] = "sqrt_inverse"   # tagger: against the mass of O
    min_span_words: int = Field(1, ge=1)               # tagger, at inference: shorter predicted spans are dropped
    boundary_jitter: int = Field(2, ge=0)              # stance: max words moved at each span edge
    jitter_copies: int = Field(1, ge=0)                # stance: jittered copies of each gold span
    context_sentences: int = Field(1, ge=0)            # stance: sentences of context before the span's own
    # stance: the input names the statement's holder (half the training examples say "unknown",
    # so one model reads statements before and after `diplotag tag` has found their holders)
    holder_in_input: bool = False
    rerank_top: int = Field(0, ge=0)                   # holder: a cross-encoder re-scores the ranker's top N; 0 = none
    head_words: int = Field(0, ge=0)                   # holder: the document's first N words close the cross-encoder's context
    # holder: a cross-encoder trained before (a holder run's `reranker/`, or a shipped one), kept as it is: only
    # the ranker is fitted (seconds, not minutes), then the cross-encoder's weight and margin beside it on dev;
    # with rerank_top, else unused
    reranker_from: Path | None = None
    ranker_hidden: int = Field(0, ge=0)                # holder: tanh units beside the ranker's linear score; 0 = linear
    ranker_weight_decay: float | None = Field(None, ge=0)  # holder: the ranker's L2 penalty; unset: weight_decay's
    # classifier: the dev metric that picks the checkpoint (macro_f1, accuracy or recall_<label>; with a
    # prefilter and an `offtopic` label, also the gate's, both stages deciding: gate_recall_<label>, and
    # gate_pass_then_skip: its recall of the documents it must pass, ties broken by its recall of the skipped ones)
    best_metric: str = "macro_f1"
    # classifier: a first stage, TF-IDF and a logistic regression over the whole text at this inverse
    # L2 penalty (model/gate.py), fitted beside the transformer; unset: none
    prefilter_c: float | None = Field(None, gt=0)
    # classifier, as the relevance gate: where the prefilter's probability of the class the gate skips
    # (`offtopic`) reaches this, the prefilter decides alone; between this and the keep threshold below,
    # the mean of its probability and the transformer's decides
    prefilter_threshold: float = Field(0.9, gt=0, le=1)
    # and where it is at or under this, the prefilter passes the document alone; unset: never
    prefilter_keep_threshold: float | None = Field(None, ge=0, lt=1)

    # the optimisation
    epochs: float = Field(10, gt=0)
    batch_size: int = Field(16, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    # the new classification head starts from random: it learns at this multiple of the
    # encoder's rate, so it leaves the all-O start within the first epoch
    head_learning_rate_multiplier: float = Field(1.0, gt=0)
    mixed_precision: Literal["auto", "no"] = "auto"  # auto: bf16 where the GPU or CPU has it
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    early_stopping_patience: int = Field(3, ge=0)      # evaluations without improvement; 0 = off
    eval_steps: int | None = Field(None, gt=0)         # evaluate/save every N steps; None = every epoch
    seed: int = 42
    max_train_docs: int | None = Field(None, gt=0)     # for smoke tests and learning curves

    @model_validator(mode="after")
    def _check(self):
        for name in ("train_file", "dev_file"):
            if not getattr(self, name).is_file():
                raise ValueError(f"{name}: no such file: {getattr(self, name)}")
        if self.stride >= self.max_length - 2:
            raise ValueError(f"stride ({self.stride}) must be smaller than max_length - 2 ({self.max_length - 2})")
        if self.reranker_from is not None and self.rerank_top:
            kept = self.reranker_from / "diplotag_config.yaml"
            trained = (yaml.safe_load(kept.read_text()) if kept.is_file() else None) or {}
            trained = trained if isinstance(trained, dict) else {}
            if self.task != "holder":
                raise ValueError("reranker_from: only a holder ranker keeps a cross-encoder")
            if trained.get("task") != "holder" or trained.get("labels") != ["other", "holder"] or not kept_weights(self.reranker_from):
                raise ValueError(f"reranker_from: {self.reranker_from} is no cross-encoder trained by `diplotag train holder` "
                                 f"(its {kept.name} and weights)")
            if self.reranker_from.resolve().is_relative_to(self.output_dir.resolve()):
                raise ValueError(f"reranker_from: {self.reranker_from} lies in output_dir, which training rewrites")
            # it reads pairs as they were built when it trained (a key it predates has its default)
            then = {k: trained.get(k, type(self).model_fields[k].default)
                    for k in ("base_model", "max_length", "context_sentences", "head_words")}
            differ = [k for k, v in then.items() if v != getattr(self, k)]
            if differ:
                raise ValueError(f"reranker_from: {self.reranker_from} was trained with other {', '.join(differ)} "
                                 f"({', '.join(f'{k}: {then[k]}' for k in differ)})")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels: duplicates in {self.labels}")
        metrics = ["macro_f1", "accuracy"] + [f"recall_{label}" for label in self.labels]
        if self.prefilter_c and GATE_REJECTS in self.labels:  # the gate's, both stages as `diplotag tag --gate` runs them
            metrics += [f"gate_recall_{label}" for label in self.labels] + ["gate_pass_then_skip"]
        if self.task == "classifier" and self.best_metric not in metrics:
            raise ValueError(f"best_metric: {self.best_metric!r} is none of {', '.join(metrics)}")
        if self.prefilter_c and self.task != "classifier":
            raise ValueError("prefilter_c: only a document classifier (task: classifier) has a prefilter")
        if self.prefilter_keep_threshold is not None and self.prefilter_keep_threshold >= self.prefilter_threshold:
            raise ValueError(f"prefilter_keep_threshold ({self.prefilter_keep_threshold}) must be under "
                             f"prefilter_threshold ({self.prefilter_threshold})")
        return self

    def sha256(self) -> str:
        """Hash of the settings that shape the model; where files live is left out (the data
        has its own hash), so the same run from another folder stamps the same, and so are
        settings read only at inference (min_span_words), and so are LoRA settings in a full
        fine-tuning run, which never reads them, and so are `rerank_top` outside the holder task
        `best_metric` outside the classifier and `holder_in_input`, `head_words`, `ranker_hidden`, `ranker_weight_decay`, `reranker_from`
        and `prefilter_c` (with `prefilter_threshold`) and `prefilter_keep_threshold` when off (keys added
        later: older stamps stay current)."""
        ignored = {"train_file", "dev_file", "output_dir", "min_span_words"} | ({"lora"} if self.finetune == "full" else set())
        ignored |= ({"rerank_top"} if self.task != "holder" else set()) | ({"best_metric"} if self.task != "classifier" else set())
        ignored |= (set() if self.holder_in_input else {"holder_in_input"}) | (set() if self.head_words else {"head_words"})
        ignored |= (set() if self.ranker_hidden else {"ranker_hidden"}) | (
            set() if self.ranker_weight_decay is not None else {"ranker_weight_decay"})
        ignored |= set() if self.prefilter_c else {"prefilter_c", "prefilter_threshold"}
        ignored |= set() if self.prefilter_c and self.prefilter_keep_threshold is not None else {"prefilter_keep_threshold"}
        ignored |= set() if self.reranker_from and self.rerank_top else {"reranker_from"}
        settings = self.model_dump(mode="json", exclude=ignored)
        if "reranker_from" in settings:  # the kept cross-encoder's weights, not where they live
            settings["reranker_from"] = file_sha256(kept_weights(self.reranker_from))
        return hashlib.sha256(yaml.safe_dump(settings, sort_keys=True).encode()).hexdigest()


def _set_dotted(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def load_config(path, overrides=(), root: Path | None = None) -> TrainConfig:
    """Read, override and validate a config. Relative paths are taken from `root` (default:
    the current directory). Raises ValueError with every problem in one message."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such config file: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--set expects key=value, got {item!r}")
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    root = Path(root or ".")
    for key in ("train_file", "dev_file", "output_dir", "reranker_from"):
        if isinstance(raw.get(key), str) and not Path(raw[key]).is_absolute():
            raw[key] = str(root / raw[key])
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as err:
        problems = "\n".join(f"  {'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors())
        raise ValueError(f"{path}: invalid config:\n{problems}") from None


def kept_weights(folder: Path) -> Path | None:
    """A trained cross-encoder's weights: its adapter, shipped or in its run, or a full model."""
    return next((p for p in (folder / "adapter_model.safetensors", folder / "adapter" / "adapter_model.safetensors",
                             folder / "model.safetensors") if p.exists()), None)


def file_sha256(*paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()
