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


def _run_diplotag(model, docs, backend, threads, repeats, queue):
    import os

    import torch

    from ..model.tagger import Tagger

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    torch.set_num_threads(threads)
    tagger = Tagger.from_pretrained(model, backend=backend, device="cpu")
    def tag(some, batch_docs=64):  # what `run_tag_job` runs per batch of documents (its default size)
        return [r for i in range(0, len(some), batch_docs) for r in tagger.tag(some[i:i + batch_docs])]

    seconds, records = best_of(tag, docs, repeats)
    queue.put({"seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
               "spans": [[(s["start"], s["end"], s["label"], s["stance"]) for s in r.get("spans", [])] for r in records]})


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

    import torch
    import yaml
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer, pipeline

    from ..model.base import DEFAULT_MODELS
    from ..model.stance import stance_inputs
    from ..model.tagger import Tagger, load_model, quantize_int8

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

    def run(batch_size):
        def tag(some):
            texts = [d["text"] for d in some]
            found = ner(texts, batch_size=batch_size)
            pairs = [p for text, ents in zip(texts, found) for p in stance_inputs(text, ents, stance_cfg["context_sentences"])]
            stances = iter(cls([{"text": a, "text_pair": b} for a, b in pairs], batch_size=batch_size,
                               truncation="only_second", max_length=stance_cfg["max_length"]) if pairs else [])
            return [[(e["start"], e["end"], e["label"], next(stances)["label"]) for e in ents] for ents in found]
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
    """Share of statements (offsets, label, stance) found by both, over those found by either."""
    both = either = 0
    for x, y in zip(a, b):
        x, y = set(map(tuple, x)), set(map(tuple, y))
        both, either = both + len(x & y), either + len(x | y)
    return both / either if either else 1.0


def matmul_peak_gflops(threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
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


def run_speed_bench(model="default", n_docs=300, sizes=(3, 30, 300), threads=2, backend="torch",
                    out_json=None, command="", repeats=3) -> dict:
    import yaml
    from transformers import AutoTokenizer

    from ..model.base import DEFAULT_MODELS

    root = DEFAULT_MODELS if model == "default" else Path(model)
    trained = trained_settings(root / "tagger", {"max_length": 512, "stride": 128})
    max_length, stride = trained["max_length"], trained["stride"]  # both systems window as in training
    tok = AutoTokenizer.from_pretrained(root / "tagger")
    docs = workload(n_docs)
    n_tokens = sum(len(x) for x in tok([d["text"] for d in docs], add_special_tokens=False)["input_ids"])
    words = [len(d["text"].split()) for d in docs]
    ours = _in_fresh_process(_run_diplotag, model, docs, backend, threads, repeats)
    theirs = _in_fresh_process(_run_pipeline, model, docs, threads, max_length, stride,
                               trained.get("min_span_words", 1), backend, repeats)
    scaling = []
    for n in sizes:
        sub = workload(n, seed=1)
        toks = sum(len(x) for x in tok([d["text"] for d in sub], add_special_tokens=False)["input_ids"])
        r = _in_fresh_process(_run_diplotag, model, sub, backend, threads, 1)
        scaling.append({"documents": n, "tokens": toks, "seconds": round(r["seconds"], 2),
                        "seconds_per_1k_tokens": round(1000 * r["seconds"] / toks, 4)})
    peak = matmul_peak_gflops(threads)
    achieved = model_flops_per_token(model) * n_tokens / ours["seconds"] / 1e9
    result = {
        "command": command, "threads": threads, "backend": backend, "window": [max_length, stride],
        "workload": {"documents": len(docs), "tokens": n_tokens, "words_min": min(words), "words_max": max(words)},
        "diplotag": {"seconds": round(ours["seconds"], 2), "docs_per_s": round(len(docs) / ours["seconds"], 2),
                     "tokens_per_s": round(n_tokens / ours["seconds"], 1), "peak_rss_mb": round(ours["peak_rss_mb"])},
        "pipeline": {"seconds": round(theirs["seconds"], 2), "docs_per_s": round(len(docs) / theirs["seconds"], 2),
                     "tokens_per_s": round(n_tokens / theirs["seconds"], 1),
                     "peak_rss_mb": round(theirs["peak_rss_mb"]), "batch_size": theirs["batch_size"],
                     "seconds_by_batch_size": theirs["seconds_by_batch_size"]},
        "timing": f"warm-up on 3 documents, then the best of {repeats} runs, output kept in memory, on both sides",
        "speedup": round(theirs["seconds"] / ours["seconds"], 2),
        "agreement": round(agreement(ours["spans"], theirs["spans"]), 4),
        "scaling": scaling,
        "matmul_peak_gflops": round(peak, 1), "achieved_gflops": round(achieved, 1),
        "model_flops_utilisation": round(achieved / peak, 3),
    }
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(result, indent=1))
    return result
