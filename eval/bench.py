"""`diplotag bench speed`: batch inference against the obvious alternative, on the same machine,
models and workload.

The workload is fixed and reproducible: articles assembled from the corpus texts by a seeded
generator, from a few sentences to over 3,000 words. Each system runs in a fresh process
(so peak resident memory is its own): `diplotag tag`'s job (`run_tag_job`) and transformers'
`pipeline("token-classification", stride=…)` over the list of articles, then
`pipeline("text-classification")` over the list of statements found — the pipeline at its
best, as its documentation shows it: lists in, the best of batch sizes 1, 8 and 32. Both
sides are timed the same way (a warm-up on a few documents, then the best of `repeats`
runs, the same threads, TOKENIZERS_PARALLELISM off, output kept in memory), and an int8
diplotag is compared with an int8 pipeline. The token-classification pipeline decodes with
diplotag's decoder rather than an `aggregation_strategy` (whose per-word argmax answers differ
from ours), so that both find the same statements (≥ 99% agreement) and the speed ratio
compares the same work.
"""
import json
import multiprocessing as mp
import random
import resource
import time
from pathlib import Path

from ..data.build import load_splits


def workload(n_docs: int, seed: int = 0) -> list[dict]:
    """`n_docs` articles: a third short (2–6 sentences of one document), the rest whole corpus
    documents joined into articles of 1 to 12 documents (about 250 to 3,500 words)."""
    rng = random.Random(seed)
    texts = [r["text"] for recs in load_splits().values() for r in recs]
    docs = []
    for i in range(n_docs):
        if i % 3 == 0:
            sentences = rng.choice(texts).split(". ")
            k = rng.randint(2, 6)
            text = ". ".join(sentences[:k]).strip()
        else:
            text = "\n\n".join(rng.sample(texts, rng.choice([1, 1, 2, 3, 4, 6, 8, 12])))
        docs.append({"id": f"bench-{i:04d}", "text": text})
    return docs


def mixed_workload(n_docs: int, share: float, seed: int = 0) -> list[dict]:
    """A day's news stream: `share` of `n_docs` documents drawn from the test split (the beat,
    with statements or none), the rest from the held-out off-topic articles (data/gate/test.jsonl),
    shuffled. Every test document says whether it holds a statement (`meta.statements`)."""
    from ..data.build import GATE_DIR, OFFTOPIC
    from ..data.convert import read_labelled_texts

    rng = random.Random(seed)
    beat = load_splits()["test"]
    offtopic = [r for r in read_labelled_texts(GATE_DIR / "test.jsonl") if r["label"] == OFFTOPIC]
    n_beat = max(1, round(share * n_docs))
    if n_beat > len(beat) or n_docs - n_beat > len(offtopic):
        raise ValueError(f"--mix {share} of {n_docs} documents needs {n_beat} test and {n_docs - n_beat} off-topic "
                         f"documents; there are {len(beat)} and {len(offtopic)}")
    docs = ([{"id": r["id"], "text": r["text"], "meta": {"statements": len(r["spans"])}} for r in rng.sample(beat, n_beat)]
            + [{"id": r["id"], "text": r["text"], "meta": {"statements": 0, "offtopic": True}}
               for r in rng.sample(offtopic, n_docs - n_beat)])
    rng.shuffle(docs)
    return docs


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def trained_settings(folder: Path, defaults: dict) -> dict:
    """The run's config that travels with a model (`Tagger.from_pretrained` reads the same), or
    the inference defaults for a folder without one."""
    import yaml

    path = folder / "diplotag_config.yaml"
    return dict(defaults, **(yaml.safe_load(path.read_text()) if path.exists() else {}))


def best_of(run, docs, repeats: int) -> tuple[float, list]:
    """A warm-up on a few documents (lazy initialisation, allocator, thread pools), then the
    fastest of `repeats` timed runs over all of them: how both systems are timed."""
    run(docs[:3])
    best, answer = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        answer = run(docs)
        best = min(best, time.perf_counter() - start)
    return best, answer


def _run_diplotag(model, docs, backend, threads, repeats, precision, gate, queue):
    import os

    import torch

    from ..model.tagger import Tagger

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    torch.set_num_threads(threads)
    tagger = Tagger.from_pretrained(model, backend=backend, device="cpu", precision=precision, gate=gate)
    def tag(some, batch_docs=64):  # what `run_tag_job` runs per batch of documents (its default size)
        return [r for i in range(0, len(some), batch_docs) for r in tagger.tag(some[i:i + batch_docs])]

    seconds, records = best_of(tag, docs, repeats)
    result = {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "gated": [bool(r.get("gated")) for r in records],
              "spans": [[(s["start"], s["end"], s["label"], s["stance"], s.get("holder")) for s in r.get("spans", [])]
                        for r in records]}
    if gate:  # where a stream's time goes: the gate alone, and the tagger alone on what a perfect gate would pass
        result["gate_seconds"] = best_of(lambda some: tagger.gate_scores([d["text"] for d in some]), docs, repeats)[0]
        tagger.gate_model = None
        beat = [d for d in docs if d.get("meta", {}).get("statements")]
        result["statement_documents_seconds"] = best_of(tag, beat, repeats)[0] if beat else 0.0
    queue.put(result)


def pipeline_with_our_decoding(decoder):
    """transformers' token-classification pipeline whose postprocess decodes its windows'
    logits as `diplotag tag` does (max-context merge, valid IOB2, shortest statement)
    instead of with an `aggregation_strategy`. Tokenization, windowing (the pipeline's own
    `stride`) and the forward passes are all the pipeline's: only the decoding, which costs
    little, is swapped, so both systems give the same answers and the timings compare."""
    import numpy as np
    from transformers import TokenClassificationPipeline

    from ..data.align import encode_document

    stride = decoder.stride
    decoder.tokenizer.model_max_length = decoder.max_length  # the pipeline windows as the tagger does

    class DecodedPipeline(TokenClassificationPipeline):
        def postprocess(self, all_outputs, **kwargs):
            text = all_outputs[0]["sentence"]
            enc = encode_document(self.tokenizer, text)
            windows, first = [], 0
            for out in all_outputs:
                probs = out["logits"][0].float().softmax(-1).numpy()  # as `Tagger._run` computes them
                real = np.flatnonzero(out["special_tokens_mask"][0].numpy() == 0)
                index = np.full(len(probs), -1)
                index[real] = np.arange(first, first + len(real))
                # the pipeline's overflowing windows overlap by `stride` tokens
                assert not len(real) or tuple(out["offset_mapping"][0][real[0]].tolist()) == enc.offsets[first]
                windows.append((index.tolist(), probs))
                first += len(real) - stride
            return decoder.decode(text, enc, windows)

    # the pipeline refuses `stride` without an aggregation strategy; ours replaces it in postprocess
    return DecodedPipeline(model=decoder.model, tokenizer=decoder.tokenizer, stride=stride, device="cpu",
                           aggregation_strategy="first")


def _run_pipeline(model, docs, threads, max_length, stride, min_words, backend, repeats, queue):
    """What a user would write with transformers alone, as its documentation shows it: a
    token-classification pipeline over the list of articles, then a text-classification pipeline
    over the list of statements found; each at the best of batch sizes 1, 8 and 32."""
    import os

    import numpy as np
    import torch
    import yaml
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer, pipeline

    from ..model.base import DEFAULT_MODELS
    from ..model.holder import HOLDS, RERANKER_DIR, HolderRanker
    from ..model.stance import stance_inputs
    from ..model.tagger import STANCE_TEMPERATURE, Tagger, load_model, quantize_int8, sentences_around, stance_of

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    torch.set_num_threads(threads)
    root = DEFAULT_MODELS if model == "default" else Path(model)
    stance_cfg = trained_settings(root / "stance", {"context_sentences": 1, "max_length": 160})
    tagger_model = load_model(root / "tagger", AutoModelForTokenClassification)
    stance_model = load_model(root / "stance", AutoModelForSequenceClassification)
    if backend == "int8":  # int8 against int8: the same quantization on both sides
        tagger_model, stance_model = quantize_int8(tagger_model), quantize_int8(stance_model)
    # a Tagger around the pipeline's own model object: only its `decode` is used
    decoder = Tagger(tagger_model, AutoTokenizer.from_pretrained(root / "tagger"),
                     max_length=max_length, stride=stride, min_words=min_words)
    ner = pipeline_with_our_decoding(decoder)
    cls = pipeline("text-classification", model=stance_model, tokenizer=AutoTokenizer.from_pretrained(root / "stance"),
                   device="cpu")
    reads_holder = stance_cfg.get("holder_in_input", False)
    temperature = getattr(stance_model.config, STANCE_TEMPERATURE, None)
    names = {int(k): v for k, v in stance_model.config.id2label.items()}
    ranker = reranker = None
    if (root / "holder" / "holder_ranker.json").exists():  # holders as diplotag gives them: its ranker, its cross-encoder as a pipeline
        ranker, folder = HolderRanker.from_pretrained(root / "holder"), root / "holder" / RERANKER_DIR
        if ranker.rerank_top:
            reranker = pipeline("text-classification", model=load_model(folder, AutoModelForSequenceClassification),
                                tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu", top_k=None)
            reranker_length = trained_settings(folder, {"max_length": 128})["max_length"]

    def run(batch_size):
        def stances_of(texts, found, bounds):  # each statement's stance, in place, by the text-classification pipeline
            pairs = [p for text, ents, b in zip(texts, found, bounds)
                     for p in stance_inputs(text, ents, stance_cfg["context_sentences"], bounds=b, holders=reads_holder)]
            stances = iter(cls([{"text": a, "text_pair": b} for a, b in pairs], batch_size=batch_size, top_k=None,
                               truncation="only_second", max_length=stance_cfg["max_length"]) if pairs else [])
            for ents in found:
                for e in ents:  # the scores at the temperature in the model's config.json, as diplotag gives them
                    scores = {x["label"]: x["score"] for x in next(stances)}
                    e["stance"], e["stance_scores"] = stance_of(np.array([scores[names[i]] for i in range(len(names))]),
                                                                names, temperature)

        def holds(pairs):
            scores = reranker([{"text": a, "text_pair": b} for a, b in pairs], batch_size=batch_size,
                              truncation="only_second", max_length=reranker_length)
            return [next(x["score"] for x in row if x["label"] == HOLDS) for row in scores]

        def tag(some):
            texts = [d["text"] for d in some]
            found = ner(texts, batch_size=batch_size)
            # as `diplotag tag`: sentences segmented once; holders after the stance (and, where it reads them, the stance again)
            bounds = sentences_around(texts, found, max(stance_cfg["context_sentences"],
                                                        ranker.context_sentences if ranker else 0, 1))
            stances_of(texts, found, bounds)
            if ranker is not None:
                ranker.predict(texts, found, bounds, pair_probs=holds if reranker else None)
                if reads_holder:
                    stances_of(texts, found, bounds)
            return [[(e["start"], e["end"], e["label"], e["stance"], e.get("holder")) for e in ents] for ents in found]
        return tag

    timings = {b: best_of(run(b), docs, repeats) for b in (1, 8, 32)}
    batch_size = min(timings, key=lambda b: timings[b][0])
    queue.put({"seconds": timings[batch_size][0], "batch_size": batch_size, "peak_rss_mb": _peak_rss_mb(),
               "seconds_by_batch_size": {b: round(t, 2) for b, (t, _) in timings.items()},
               "spans": timings[batch_size][1]})


def _in_fresh_process(target, *args, timeout=3 * 3600):
    """`target(*args, queue)` in a spawned process; its result, or an error if it dies or overruns."""
    import queue as queue_module

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, results))
    proc.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = results.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive() and results.empty():
                raise RuntimeError(f"bench process {target.__name__} died (exit code {proc.exitcode})")
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"bench process {target.__name__} ran past {timeout} s")
    proc.join()
    return result


def agreement(a, b) -> float:
    """Share of statements (offsets, label, stance, holder) found by both, over those found by either."""
    both = either = 0
    for x, y in zip(a, b):
        x, y = set(map(tuple, x)), set(map(tuple, y))
        both, either = both + len(x & y), either + len(x | y)
    return both / either if either else 1.0


def matmul_peak_gflops(threads: int, precision: str = "fp32") -> float:
    """This CPU's matrix-multiply rate in the dtype the models run in: the peak MFU is taken against."""
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    for _ in range(2):
        a @ b
    start, n = time.perf_counter(), 10
    for _ in range(n):
        a @ b
    return 2 * 2048 ** 3 * n / (time.perf_counter() - start) / 1e9


def model_flops_per_token(model_dir) -> float:
    """Forward FLOPs per token of the encoder's matrix multiplies (2 × non-embedding weights),
    as nanoGPT counts them; attention scores add under 10% at these lengths and are left out."""
    from transformers import AutoConfig

    from ..model.base import DEFAULT_MODELS

    root = DEFAULT_MODELS if model_dir == "default" else Path(model_dir)
    c = AutoConfig.from_pretrained(root / "tagger")
    per_layer = 4 * c.hidden_size ** 2 + 2 * c.hidden_size * c.intermediate_size
    return 2 * c.num_hidden_layers * per_layer


def median_round(speedups: list[float]) -> int:
    """The index of the round with the median speed-up; of an even number, the lower middle one."""
    return sorted(range(len(speedups)), key=speedups.__getitem__)[(len(speedups) - 1) // 2]


def run_speed_bench(model="default", n_docs=300, sizes=(3, 30, 300), threads=2, backend="torch",
                    out_json=None, command="", repeats=3, precision="fp32", mix=None, rounds=1) -> dict:
    """diplotag (in `precision`, and in fp32 for reference when that is bf16) against the
    pipeline in fp32, as a user runs it. With `mix` (a share of test documents in a stream of
    off-topic ones), diplotag runs its relevance gate and the pipeline tags everything. With
    `rounds`, both are timed that many times in turn, and the round with the median speed-up
    gives the figures: a machine whose speed drifts over minutes then weighs on both sides alike."""
    from transformers import AutoTokenizer

    from ..model.base import DEFAULT_MODELS

    if rounds < 1:
        raise ValueError(f"--rounds {rounds}: at least one round")
    root = DEFAULT_MODELS if model == "default" else Path(model)
    trained = trained_settings(root / "tagger", {"max_length": 512, "stride": 128})
    max_length, stride = trained["max_length"], trained["stride"]  # both systems window as in training
    tok = AutoTokenizer.from_pretrained(root / "tagger")
    docs = mixed_workload(n_docs, mix) if mix else workload(n_docs)
    doc_tokens = [len(x) for x in tok([d["text"] for d in docs], add_special_tokens=False)["input_ids"]]
    n_tokens = sum(doc_tokens)
    words = [len(d["text"].split()) for d in docs]
    gate = bool(mix)
    timed = []  # per round: diplotag's runs by precision, the pipeline's, and the matmul peak of the moment
    for _ in range(rounds):
        runs = {p: _in_fresh_process(_run_diplotag, model, docs, backend, threads, repeats, p, gate)
                for p in dict.fromkeys((precision, "fp32"))}
        theirs = _in_fresh_process(_run_pipeline, model, docs, threads, max_length, stride,
                                   trained.get("min_span_words", 1), backend, repeats)
        timed.append((runs, theirs, matmul_peak_gflops(threads, precision)))
    by_round = [theirs["seconds"] / runs[precision]["seconds"] for runs, theirs, _ in timed]
    runs, theirs, peak = timed[median_round(by_round)]
    ours = runs[precision]
    scaling = []
    for n in sizes if not mix else ():
        sub = workload(n, seed=1)
        toks = sum(len(x) for x in tok([d["text"] for d in sub], add_special_tokens=False)["input_ids"])
        r = _in_fresh_process(_run_diplotag, model, sub, backend, threads, 1, precision, False)
        scaling.append({"documents": n, "tokens": toks, "seconds": round(r["seconds"], 2),
                        "seconds_per_1k_tokens": round(1000 * r["seconds"] / toks, 4)})
    tagged_tokens = sum(n for n, gated in zip(doc_tokens, ours["gated"]) if not gated)
    achieved = model_flops_per_token(model) * tagged_tokens / ours["seconds"] / 1e9

    def system(r):
        return {"seconds": round(r["seconds"], 2), "docs_per_s": round(len(docs) / r["seconds"], 2),
                "tokens_per_s": round(n_tokens / r["seconds"], 1), "peak_rss_mb": round(r["peak_rss_mb"])}

    result = {
        "command": command, "threads": threads, "backend": backend, "precision": precision, "window": [max_length, stride],
        "workload": {"documents": len(docs), "tokens": n_tokens, "words_min": min(words), "words_max": max(words)},
        "diplotag": system(ours),
        "pipeline": dict(system(theirs), batch_size=theirs["batch_size"], seconds_by_batch_size=theirs["seconds_by_batch_size"]),
        "timing": f"warm-up on 3 documents, then the best of {repeats} runs, output kept in memory, on both sides"
                  + (f"; {rounds} rounds, each timing diplotag then the pipeline in fresh processes, the figures "
                     f"from the round with the median speed-up{' (the lower of the two middle ones)' if rounds % 2 == 0 else ''}"
                     f" (speed-ups by round: {', '.join(f'{x:.2f}×' for x in by_round)})" if rounds > 1 else ""),
        "speedup": round(theirs["seconds"] / ours["seconds"], 2),
        "speedup_by_round": [round(x, 2) for x in by_round],
        "agreement": round(agreement(ours["spans"], theirs["spans"]), 4),
        "scaling": scaling,
        "matmul_peak_gflops": round(peak, 1), "achieved_gflops": round(achieved, 1),
        "model_flops_utilisation": round(achieved / peak, 3),
    }
    if precision != "fp32":  # the exact path, for the price of the faster one
        result["diplotag_fp32"] = dict(system(runs["fp32"]), speedup=round(theirs["seconds"] / runs["fp32"]["seconds"], 2),
                                       agreement=round(agreement(runs["fp32"]["spans"], theirs["spans"]), 4))
    if mix:
        bearing = [i for i, d in enumerate(docs) if d["meta"]["statements"]]
        passed = [i for i, d in enumerate(docs) if not ours["gated"][i]]
        result["workload"]["mix"] = mix
        result["gate"] = {
            "statement_documents": len(bearing),
            "statement_documents_passed": sum(not ours["gated"][i] for i in bearing),
            "offtopic_documents": sum(bool(d["meta"].get("offtopic")) for d in docs),
            "offtopic_gated": sum(ours["gated"][i] for i, d in enumerate(docs) if d["meta"].get("offtopic")),
            "gate_seconds": round(ours["gate_seconds"], 3),
            # the bound on the stream's speed-up of a gate that cost nothing and passed only these documents
            "statement_documents_seconds": round(ours["statement_documents_seconds"], 3),
            "speedup_bound": round(theirs["seconds"] / ours["statement_documents_seconds"], 2)
            if ours["statement_documents_seconds"] else None,
            # on the documents the gate passes, both systems should find the same statements
            "agreement_on_passed": round(agreement([ours["spans"][i] for i in passed],
                                                   [theirs["spans"][i] for i in passed]), 4)}
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(result, indent=1))
    return result
