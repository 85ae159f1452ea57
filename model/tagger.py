"""Batch inference: find every statement in every document, with its label, stance and scores.

    from diplotag.model.tagger import Tagger
    tagger = Tagger.from_pretrained("default")        # or a folder holding tagger/ and stance/
    records = tagger.tag(["HANOI – Japan will deliver …", {"id": "a1", "text": "…"}])

A batch of documents is tokenized once; its windows are sorted by length and run in
padded batches under `torch.inference_mode`; each document's windows are merged
(every token takes the window where it has the most context) and decoded to char
spans; then every span's stance is predicted, again in length-sorted batches.
"""
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

from ..data.align import bio_to_char_spans, encode_documents, merge_window_probs, special_tokens_template, window_features
from .base import DEFAULT_MODELS, resolve_base
from .gate import GATE_REJECTS, GATE_THRESHOLD, PREFILTER_FILES, WordPrefilter
from ..data.sentences import sentence_bounds
from .holder import HOLDS, RERANKER_DIR, HolderRanker
from .stance import stance_inputs


# config.json keys of the calibrations fitted on dev (train/calibrate.py)
SPAN_CALIBRATION, STANCE_TEMPERATURE = "diplotag_span_platt", "diplotag_stance_temperature"
PRECISIONS = ("fp32", "bf16")
# config.json key of a shipped full fine-tune whose word embeddings were frozen: the base to take them from
EMBEDDINGS_FROM_BASE = "diplotag_word_embeddings_from"


def load_model(path, auto_cls):
    """A standard Hugging Face folder; a shipped full fine-tune (every weight but the frozen word
    embeddings, which come from the base named in config.json); or a PEFT adapter folder (adapter
    weights, config.json with id2label, tokenizer), merged into its base model on load."""
    import warnings

    from transformers.utils import logging as hf_logging

    path = Path(path)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Loading weights" bars are noise in a tagging job
    try:
        config = AutoConfig.from_pretrained(path)
        if getattr(config, EMBEDDINGS_FROM_BASE, None):
            from safetensors.torch import load_file

            hf_logging.set_verbosity_error()  # the base has no head: the shipped weights supply it, below
            model = auto_cls.from_pretrained(resolve_base(getattr(config, EMBEDDINGS_FROM_BASE)), config=config)
            weights = {k: v.float() if v.is_floating_point() else v for k, v in load_file(path / "model.safetensors").items()}
            missing, unexpected = model.load_state_dict(weights, strict=False)
            if unexpected or any(not k.endswith("word_embeddings.weight") for k in missing):
                raise ValueError(f"{path}: weights do not fit the base (missing {missing}, unexpected {unexpected})")
            return model
        if not (path / "adapter_config.json").exists():
            return auto_cls.from_pretrained(path)  # a full model: its load report, if any, stays visible
        from peft import PeftModel

        base_name = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        # The base checkpoint has no classification head, which the adapter supplies: the base
        # load report's "MISSING … newly initialized" would be untrue of the model we return.
        hf_logging.set_verbosity_error()
        base = auto_cls.from_pretrained(resolve_base(base_name), config=config)
        with warnings.catch_warnings():  # peft reads transformers' deprecated names: for their authors, not our users
            warnings.simplefilter("ignore", FutureWarning)
            return PeftModel.from_pretrained(base, path).merge_and_unload()
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def quantize_int8(model):
    """Dynamic int8 quantization of the encoder's linear layers, with one scale per output
    channel. Two kinds stay in float: the classification head, tiny and right on the
    decision, and each feed-forward block's output projection, whose post-GELU inputs
    quantize badly (dev span F1: 0.426 with it quantized, 0.454 without, 0.480 in float)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    def stays_float(name):
        return name.split(".")[0] in {"classifier", "score"} or (name.endswith("output.dense") and ".attention." not in name)

    spec = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not stays_float(name)}
    return quantize_dynamic(model, spec, dtype=torch.qint8)


# Words that carry no statement on their own: a predicted span made only of these (an auxiliary,
# "reaffirmed the", "said it would") is a fragment, and decoding drops it.
FUNCTION_WORDS = frozenset("""a an the this that these those it its it's he she they them their his her we our i you
of to in on at by for with from into over under as about against between and or but nor not no
is are was were be been being am has have had do does did will would shall should can could may might must
said says say told tell stated noted stressed reaffirmed reiterated added announced confirmed expressed
underlined underscored emphasised emphasized highlighted insisted also which who whom whose
what when where while there here so than then very more most such other""".split())


def snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """A statement never starts or ends inside a word. A start on the possessive "s" that the
    tokenizer split off after an apostrophe ("Beijing’s") moves on to the next word (the owner
    is an agent subject, outside the span); any other start inside a word moves back to the
    word's first character, and an end inside a word moves on to its last."""
    joiners = "’'‑-"

    def joined_before(i):  # the character before i continues the same word
        return 0 < i <= len(text) and (text[i - 1].isalnum() or (text[i - 1] in joiners and i > 1 and text[i - 2].isalnum()))

    def joined_after(i):  # the character at i continues the word that ends before it
        return i < len(text) and (text[i].isalnum() or (text[i] in joiners and i + 1 < len(text) and text[i + 1].isalnum()))

    if 0 < start < len(text) - 1 and text[start] in "’'" and text[start - 1].isalnum() and text[start + 1] in "sS":
        start += 1  # on the apostrophe of a possessive ("Japan’s"): as on its "s", below
    if 0 < start < len(text) and text[start - 1] in "’'" and text[start] in "sS" and joined_before(start - 1) and (
            start + 1 == len(text) or not text[start + 1].isalnum()):
        start += 1
        while start < end and not text[start].isalnum():
            start += 1
    elif start < len(text) and text[start].isalnum():
        while joined_before(start):
            start -= 1
    if end > 0 and text[end - 1].isalnum():
        while joined_after(end):
            end += 1
    return start, max(start, end)


def has_content(words: list[str]) -> bool:
    """Whether a statement has a word that can carry it: not a function or frame word, nor a
    possessive ("expressed Japan’s" is the frame and the holder, cut from their content)."""
    def content(w):
        w = w.strip(".,;:!?\"'“”‘’()[]—–-").lower()
        return w not in FUNCTION_WORDS and not w.endswith(("’s", "'s"))
    return any(content(w) for w in words)


def decode_document(text: str, enc, windows, id2label: dict, min_words: int = 1, prior_correction=None) -> list[dict]:
    """Spans of one document from its windows' `(token_index, probs)`: windows merged, the
    class-weight prior divided out, tags decoded to valid IOB2, edges snapped to whole words,
    statements too short or with no content word dropped. Training scores checkpoints with
    this same function, so the dev F1 it selects on is the F1 `diplotag tag` delivers."""
    probs = merge_window_probs(len(enc.input_ids), windows)
    if prior_correction is not None:
        probs = probs * prior_correction
        probs /= probs.sum(-1, keepdims=True)
    spans = []
    for s in bio_to_char_spans(text, enc, probs, id2label):
        s["start"], s["end"] = snap_to_words(text, s["start"], s["end"])
        words = text[s["start"]:s["end"]].split()
        if words and len(words) >= min_words and has_content(words) and not (spans and s["start"] < spans[-1]["end"]):
            spans.append(s)
    return spans


def sentences_around(texts: list[str], spans_per_doc: list[list[dict]], lines_before: int) -> list[list]:
    """Each text's sentence bounds, segmented only around its spans (their lines and `lines_before`
    lines before each): once, for both the stance model and the holder ranker."""
    return [sentence_bounds(t, near=[(s["start"], s["end"]) for s in spans], lines_before=lines_before) if spans else []
            for t, spans in zip(texts, spans_per_doc)]


def _batches_by_length(lengths, batch_size):
    """Index batches over items sorted by length, so padding stays small."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(rows, pad_id):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def stance_of(probs: np.ndarray, names: dict[int, str], temperature: float | None = None) -> tuple[str, dict]:
    """A stance model's answer from its softmax `probs` (class id → `names`): the stance and every
    stance's score, at the model's fitted `temperature` where it has one (the holder ranker reads
    these scores, so the speed bench's pipeline side computes them here too)."""
    if temperature:  # softmax(logits / T), from the probabilities
        probs = np.power(np.clip(probs, 1e-12, 1), 1 / temperature)
        probs = probs / probs.sum()
    return names[int(probs.argmax())], {names[i]: round(float(x), 4) for i, x in enumerate(probs)}


class Tagger:
    def __init__(self, tagger_model, tagger_tokenizer, stance_model=None, stance_tokenizer=None, *,
                 max_length=512, stride=128, batch_size=8, stance_batch_size=32, stance_max_length=160, context_sentences=1,
                 min_words=1, device="cpu", holder_ranker=None, calibrated=True, min_score=0.0, precision="fp32",
                 gate_model=None, gate_tokenizer=None, gate_max_length=128, gate_threshold=GATE_THRESHOLD, gate_prefilter=None,
                 holder_reranker=None, holder_reranker_tokenizer=None, holder_reranker_max_length=128,
                 stance_reads_holder=False):
        if precision not in PRECISIONS:
            raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, not {precision!r}")
        # bf16 matrix multiplies under autocast: on a CPU with AVX-512 BF16 or AMX, or a GPU, about
        # twice the fp32 speed, with two or three statements in a hundred decided differently
        # (eval/results/bench.json). The weights, the residual stream and the layer norms stay fp32:
        # casting the whole model to bf16 was slower and changed more answers (a one-off comparison on
        # the speed bench's 40 articles: 97.1% of statements as in fp32, against 97.6%). fp32
        # reproduces the trained model exactly.
        self.precision = precision
        place = lambda m: m.eval().to(device=device) if m is not None else None
        self.model, self.tokenizer = place(tagger_model), tagger_tokenizer
        self.stance_model, self.stance_tokenizer = place(stance_model), stance_tokenizer
        # the relevance gate: documents it calls off-topic skip the tagger (`tag` marks them `gated`)
        self.gate_model, self.gate_tokenizer = place(gate_model), gate_tokenizer
        self.gate_max_length, self.gate_threshold = gate_max_length, gate_threshold
        self.gate_prefilter = gate_prefilter  # its cheap first stage, where it has one (model/gate.py)
        self.holder_ranker = holder_ranker
        # the holder ranker's cross-encoder, where it has one (model/holder.py)
        self.holder_reranker, self.holder_reranker_tokenizer = place(holder_reranker), holder_reranker_tokenizer
        self.holder_reranker_max_length = holder_reranker_max_length
        # scores fitted to mean "probability this is right" on dev; `min_score` drops statements below it
        self.span_platt = getattr(tagger_model.config, SPAN_CALIBRATION, None) if calibrated else None
        self.stance_temperature = (getattr(stance_model.config, STANCE_TEMPERATURE, None)
                                   if calibrated and stance_model is not None else None)
        self.min_score = min_score
        self.max_length = min(max_length, self.tokenizer.model_max_length)
        # on CPU, 8 windows of 256 tokens per pass ran 7% faster than 32 (attention's memory
        # grows with the square of the length), while short stance inputs gain from 32
        self.stride, self.batch_size, self.stance_batch_size, self.device = stride, batch_size, stance_batch_size, device
        self.stance_max_length, self.context_sentences, self.min_words = stance_max_length, context_sentences, min_words
        self.stance_reads_holder = stance_reads_holder  # a stance model trained with `holder_in_input`
        # A tagger trained with class weights learned p(tag)·w(tag); dividing by w gives back
        # probabilities on the data's own scale (and far fewer spurious statements).
        weights = getattr(self.model.config, "diplotag_class_weights", None)
        self.prior_correction = 1.0 / np.asarray(weights, dtype=np.float32) if weights else None
        self.id2label = {int(k): v for k, v in self.model.config.id2label.items()}
        self.template = special_tokens_template(tagger_tokenizer)
        window = self.max_length - len(self.template[0]) - len(self.template[1])
        if not 0 <= stride < window:
            raise ValueError(f"stride ({stride}) must be below the window's {window} tokens (max_length {max_length})")

    @classmethod
    def from_pretrained(cls, path="default", stance_path=None, backend="torch", device="auto", gate=False,
                        holder_path=None, **kw):
        """`path`: "default" (the shipped models), a folder with `tagger/` and `stance/` inside
        (what `diplotag train all` writes under runs/), or a tagger folder alone (then stance only
        with `stance_path`). `holder_path`: a holder model (a `diplotag train holder` run, such as
        the accurate preset's runs/base/holder) in place of the folder's `holder/`.
        `backend="int8"` quantizes the linear layers dynamically (CPU).
        `gate=True` loads the relevance gate from the folder's `gate/`; `precision="bf16"` runs
        every model's matrix multiplies in bf16 (autocast)."""
        root = DEFAULT_MODELS if path == "default" else Path(path)
        if not root.exists():
            raise FileNotFoundError(f"no model folder at {root}")
        holder_dir = Path(holder_path) if holder_path else root / "holder"
        if holder_path and not (holder_dir / "holder_ranker.json").exists():  # before the models load
            raise FileNotFoundError(f"no holder model at {holder_dir} (its holder_ranker.json: diplotag train holder)")
        if kw.get("precision", "fp32") not in PRECISIONS:
            raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, not {kw['precision']!r}")
        if backend == "int8" and kw.get("precision", "fp32") != "fp32":
            raise ValueError("the int8 backend runs in fp32 (--precision fp32)")
        tagger_dir = root / "tagger" if (root / "tagger").is_dir() else root
        stance_dir = Path(stance_path) if stance_path else (root / "stance" if (root / "stance").is_dir() else None)
        # windows as in training unless asked otherwise: the run's config travels with the model
        kw = {k: v for k, v in kw.items() if v is not None}
        for folder, keys in ((tagger_dir, {"max_length": "max_length", "stride": "stride",
                                           "min_span_words": "min_words"}),
                             (stance_dir, {"max_length": "stance_max_length",
                                           "context_sentences": "context_sentences",
                                           "holder_in_input": "stance_reads_holder"})):
            trained = folder / "diplotag_config.yaml" if folder else None
            if trained and trained.exists():
                settings = yaml.safe_load(trained.read_text())
                for key, arg in keys.items():
                    if key in settings:
                        kw.setdefault(arg, settings[key])
        tagger = load_model(tagger_dir, AutoModelForTokenClassification)
        stance = load_model(stance_dir, AutoModelForSequenceClassification) if stance_dir else None
        stance_tokenizer = AutoTokenizer.from_pretrained(stance_dir) if stance_dir else None
        if (holder_dir / "holder_ranker.json").exists():
            kw.setdefault("holder_ranker", HolderRanker.from_pretrained(holder_dir))
            reranker = holder_dir / RERANKER_DIR
            if "holder_reranker" in kw:  # the caller's own
                pass
            elif reranker.is_dir():
                kw["holder_reranker"] = load_model(reranker, AutoModelForSequenceClassification)
                kw["holder_reranker_tokenizer"] = AutoTokenizer.from_pretrained(reranker)
                kw["holder_reranker_max_length"] = yaml.safe_load((reranker / "diplotag_config.yaml").read_text())["max_length"]
            elif kw["holder_ranker"].rerank_top:
                raise FileNotFoundError(f"{holder_dir}: the ranker re-scores its top candidates with a "
                                        f"cross-encoder, and {reranker} is missing")
        if gate:
            if not (root / "gate").is_dir():
                raise FileNotFoundError(f"no relevance gate at {root / 'gate'} (train one: diplotag train classifier --ship)")
            trained = root / "gate" / "diplotag_config.yaml"  # absent from a plain Hugging Face classifier
            kw.setdefault("gate_max_length", yaml.safe_load(trained.read_text())["max_length"] if trained.exists() else 128)
            kw["gate_model"] = load_model(root / "gate", AutoModelForSequenceClassification)
            kw["gate_tokenizer"] = AutoTokenizer.from_pretrained(root / "gate")
            if (root / "gate" / PREFILTER_FILES[0]).exists():
                kw["gate_prefilter"] = WordPrefilter.from_pretrained(root / "gate")
            classes = [kw["gate_model"].config.label2id] + ([kw["gate_prefilter"].labels] if "gate_prefilter" in kw else [])
            if any(GATE_REJECTS not in c for c in classes):
                raise ValueError(f"{root / 'gate'}: a gate classifier (and its prefilter) has a {GATE_REJECTS!r} class")
        if backend == "int8":
            tagger, stance = (quantize_int8(m) if m is not None else None for m in (tagger, stance))
        elif backend != "torch":
            raise ValueError(f"unknown backend {backend!r} (torch or int8)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() and backend == "torch" else "cpu"
        return cls(tagger, AutoTokenizer.from_pretrained(tagger_dir), stance, stance_tokenizer, device=device, **kw)

    @torch.inference_mode()
    def _run(self, model, rows, pad_id, extra=None, batch_size=None):
        """Softmax outputs for token-id rows, in length-sorted padded batches, in input order."""
        out = [None] * len(rows)
        # one autocast region for all batches: each weight is cast to bf16 once, not once per batch
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            for idx in _batches_by_length([len(r) for r in rows], batch_size or self.batch_size):
                ids, mask = _pad([rows[i] for i in idx], pad_id)
                inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
                if extra is not None:
                    inputs["token_type_ids"] = _pad([extra[i] for i in idx], 0)[0].to(self.device)
                probs = model(**inputs).logits.float().softmax(-1).cpu().numpy()
                for k, i in enumerate(idx):
                    out[i] = probs[k, :len(rows[i])] if probs.ndim == 3 else probs[k]
        return out

    def find_spans(self, texts: list[str]) -> list[list[dict]]:
        """Statement spans (label, offsets, score) of each text: windows of all documents are
        batched together, then merged back per document."""
        encodings = encode_documents(self.tokenizer, texts)
        rows, owners = [], []
        for d, enc in enumerate(encodings):
            for f in window_features(self.tokenizer, enc, self.max_length, self.stride, template=self.template):
                rows.append(f["input_ids"])
                owners.append((d, f["token_index"]))
        probs = self._run(self.model, rows, self.tokenizer.pad_token_id)
        per_doc = [[] for _ in texts]
        for (d, index), p in zip(owners, probs):
            per_doc[d].append((index, p))
        return [self.decode(text, enc, wins) for text, enc, wins in zip(texts, encodings, per_doc)]

    def decode(self, text: str, enc, windows) -> list[dict]:
        """Spans of one document from its windows' `(token_index, probs)` (`decode_document`)."""
        spans = decode_document(text, enc, windows, self.id2label, self.min_words, self.prior_correction)
        if self.span_platt:
            a, b = self.span_platt
            for s in spans:
                p = min(max(s["score"], 1e-6), 1 - 1e-6)
                s["score"] = round(1 / (1 + np.exp(-(a * np.log(p / (1 - p)) + b))), 4)
        return [s for s in spans if s["score"] >= self.min_score]

    def gate_scores(self, texts: list[str]) -> list[float]:
        """The gate's probability that each text is off-topic: the classifier's, from the text's first
        tokens; with a prefilter, the prefilter's (over the whole text) where it is sure, i.e. at or
        over its own threshold or at or under its `keep_threshold`, and between the two the mean of the
        two stages' (the classifier run only there: two views of a document, its lead and all its
        words). `gate_threshold` then applies to that score, so that the eval can apply the gate after
        the fact."""
        scores, unsure, first = np.zeros(len(texts)), list(range(len(texts))), None
        if self.gate_prefilter is not None:
            first = self.gate_prefilter.probabilities(texts)[:, self.gate_prefilter.labels.index(GATE_REJECTS)]
            scores, unsure = first.copy(), np.flatnonzero(~self.gate_prefilter.sure(first)).tolist()
        if unsure:
            enc = self.gate_tokenizer([texts[i] for i in unsure], truncation=True, max_length=self.gate_max_length)
            probs = self._run(self.gate_model, enc["input_ids"], self.gate_tokenizer.pad_token_id,
                              enc.get("token_type_ids"), self.stance_batch_size)
            second = np.array([p[self.gate_model.config.label2id[GATE_REJECTS]] for p in probs])
            scores[unsure] = second if first is None else self.gate_prefilter.combine(first[unsure], second)
        return [float(p) for p in scores]

    def predict_stance(self, texts: list[str], spans_per_doc: list[list[dict]], bounds_per_doc=None) -> None:
        """Add `stance` and `stance_scores` to every span, in place. `bounds_per_doc`: each text's
        sentences around its spans, where the caller has them (`sentence_bounds(near=…)`)."""
        if self.stance_model is None:
            return
        pairs, where = [], []
        for text, spans, bounds in zip(texts, spans_per_doc, bounds_per_doc or [None] * len(texts)):
            pairs += stance_inputs(text, spans, self.context_sentences, bounds=bounds, holders=self.stance_reads_holder)
            where += spans
        if not pairs:
            return
        probs = self._pair_probs(self.stance_model, self.stance_tokenizer, pairs, self.stance_max_length)
        names = {int(k): v for k, v in self.stance_model.config.id2label.items()}
        for s, p in zip(where, probs):
            s["stance"], s["stance_scores"] = stance_of(p, names, self.stance_temperature)

    def _pair_probs(self, model, tokenizer, pairs: list[tuple[str, str]], max_length: int) -> list[np.ndarray]:
        """A sequence-pair classifier's softmax for each (first, second) pair, the second truncated."""
        enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation="only_second", max_length=max_length)
        return self._run(model, enc["input_ids"], tokenizer.pad_token_id, enc.get("token_type_ids"), self.stance_batch_size)

    def predict_holders(self, texts: list[str], spans_per_doc: list[list[dict]], bounds_per_doc=None) -> None:
        """Add `holder` and `holder_score` to every span, in place (after its stance: a neutral
        statement is mostly nobody's); the cross-encoder re-scores the ranker's top candidates."""
        if self.holder_ranker is None:
            return
        pair_probs = None
        if self.holder_reranker is not None:
            holds = self.holder_reranker.config.label2id[HOLDS]
            pair_probs = lambda pairs: [float(p[holds]) for p in self._pair_probs(
                self.holder_reranker, self.holder_reranker_tokenizer, pairs, self.holder_reranker_max_length)]
        self.holder_ranker.predict(texts, spans_per_doc, bounds_per_doc, pair_probs)

    def predict_stance_and_holders(self, texts: list[str], spans_per_doc: list[list[dict]], bounds_per_doc=None) -> None:
        """Stance, then holders (the ranker reads the stance), then, for a stance model that reads
        the holder, the stance again with the holder found: the first pass names it "unknown"."""
        if self.stance_reads_holder and self.holder_ranker is not None:  # a holder an input carried is not this run's
            for spans in spans_per_doc:
                for s in spans:
                    s.pop("holder", None)
        self.predict_stance(texts, spans_per_doc, bounds_per_doc)
        self.predict_holders(texts, spans_per_doc, bounds_per_doc)
        if self.stance_reads_holder and self.holder_ranker is not None:
            self.predict_stance(texts, spans_per_doc, bounds_per_doc)

    def tag(self, items) -> list[dict]:
        """Tag texts or records (`{"id", "text", …}`); one output record per input, in order.
        Each output is a corpus record (fields of the input carried through) whose spans have
        label, stance, score, stance_scores and their text. With the gate, every record also has
        `gated` (true: off-topic, not tagged, no spans) and `gate_score` (its off-topic probability)."""
        records = [{"id": str(i), "text": x} if isinstance(x, str) else dict(x) for i, x in enumerate(items)]
        for r in records:  # only this run's gate says what was gated (an input may be an earlier output)
            r.pop("gated", None), r.pop("gate_score", None)
        tagged = records
        if self.gate_model is not None and records:  # off-topic documents keep their record, marked, with no statements
            for r, p in zip(records, self.gate_scores([r["text"] for r in records])):
                r["gate_score"] = round(p, 4)
                r["gated"] = r["gate_score"] >= self.gate_threshold  # the score as written decides, as eval reads it
            tagged = [r for r in records if not r["gated"]]
        texts = [r["text"] for r in tagged]
        spans_per_doc = self.find_spans(texts) if texts else []
        needed = self.stance_model is not None or self.holder_ranker is not None
        bounds = sentences_around(texts, spans_per_doc if needed else [[] for _ in texts],
                                  max(self.context_sentences, getattr(self.holder_ranker, "context_sentences", 0), 1))
        self.predict_stance_and_holders(texts, spans_per_doc, bounds)
        for r in records:
            r["spans"] = []
        for r, spans in zip(tagged, spans_per_doc):
            r["spans"] = [{"start": s["start"], "end": s["end"], "label": s["label"], "stance": s.get("stance"),
                           "holder": s.get("holder"), "score": s["score"], "stance_scores": s.get("stance_scores"),
                           "holder_score": s.get("holder_score"), "text": r["text"][s["start"]:s["end"]]}
                          for s in spans]
        return records
