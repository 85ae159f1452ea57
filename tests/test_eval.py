"""Metrics on hand-made cases whose scores are known, the baselines, and the report files."""
import json

import pytest

from diplotag.eval import metrics
from diplotag.eval.baselines import KeywordTagger, TfidfStance
from diplotag.eval.report import run_eval

TEXT = "Japan will deliver two radars to Manila. Beijing opposed coercion at sea. Rain fell."
GOLD = [{"id": "d", "text": TEXT, "spans": [
    {"start": 6, "end": 39, "label": "EQUIPMENT_TRANSFER", "stance": "support"},     # will deliver … Manila
    {"start": 49, "end": 72, "label": "OPPOSITION_TO_COERCION", "stance": "support"},  # opposed coercion at sea
]}]


def pred(*spans):
    return [{"id": "d", "text": TEXT, "spans": list(spans)}]


def test_perfect_prediction_scores_one():
    r = metrics.seqeval_scores(GOLD, GOLD, ["EQUIPMENT_TRANSFER", "OPPOSITION_TO_COERCION"])
    assert r["micro avg"]["f1-score"] == 1.0
    assert metrics.end_to_end(GOLD, GOLD)["strict"]["f1"] == 1.0


def test_boundary_error_is_wrong_strictly_right_partially():
    p = pred(dict(GOLD[0]["spans"][0], start=11), GOLD[0]["spans"][1])  # "deliver two radars to Manila"
    s = metrics.seqeval_scores(GOLD, p, ["EQUIPMENT_TRANSFER", "OPPOSITION_TO_COERCION"])
    assert s["micro avg"]["f1-score"] == 0.5 and s["EQUIPMENT_TRANSFER"]["f1-score"] == 0.0
    nv = metrics.nervaluate_scores(GOLD, p, ["EQUIPMENT_TRANSFER", "OPPOSITION_TO_COERCION"])
    assert nv["overall"]["strict"]["f1"] == 0.5 and nv["overall"]["ent_type"]["f1"] == 1.0
    assert nv["overall"]["partial"]["f1"] == 0.75


def test_end_to_end_needs_the_right_stance():
    p = pred(GOLD[0]["spans"][0], dict(GOLD[0]["spans"][1], stance="oppose"))
    e2e = metrics.end_to_end(GOLD, p)
    assert e2e["strict"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_label_confusion_counts_missed_and_spurious_as_o():
    p = pred(GOLD[0]["spans"][0], {"start": 74, "end": 84, "label": "FREEDOM_OF_NAVIGATION", "stance": "support"})
    cm = metrics.label_confusion(GOLD, p, ["EQUIPMENT_TRANSFER", "FREEDOM_OF_NAVIGATION", "OPPOSITION_TO_COERCION"])
    names, m = cm["labels"], cm["matrix"]
    assert m[names.index("OPPOSITION_TO_COERCION")][names.index("O")] == 1       # missed
    assert m[names.index("O")][names.index("FREEDOM_OF_NAVIGATION")] == 1        # spurious
    assert m[names.index("EQUIPMENT_TRANSFER")][names.index("EQUIPMENT_TRANSFER")] == 1


def test_expected_calibration_error():
    assert metrics.expected_calibration_error([0.9] * 10, [1] * 9 + [0])[0] == pytest.approx(0.0)
    assert metrics.expected_calibration_error([0.9] * 10, [0] * 10)[0] == pytest.approx(0.9)


def test_keyword_baseline_finds_triggers_and_stops_at_the_clause():
    spans = KeywordTagger().find("Tokyo agreed to the transfer of radars to Hanoi; talks went on. "
                                 "Both sides upheld freedom of navigation.")
    assert [(s["label"], s["start"]) for s in spans] == [("EQUIPMENT_TRANSFER", 20), ("FREEDOM_OF_NAVIGATION", 82)]
    assert spans[0]["end"] == 47  # "transfer of radars to Hanoi"


def test_tfidf_stance_learns_something(seed_record):
    train = [{"id": str(i), "text": f"Beijing {verb} the sale of jets to Taipei.", "spans": [
        {"start": 8, "end": 8 + len(verb) + 30, "label": "EQUIPMENT_TRANSFER", "stance": stance}]}
        for i, (verb, stance) in enumerate([("slammed", "oppose"), ("welcomed", "support"),
                                            ("condemned", "oppose"), ("praised", "support")] * 3)]
    stances, probs = TfidfStance(train).predict([train[0]])
    assert stances == ["oppose"] and len(probs[0]) == 3


def test_report_files(tmp_path, tiny_models, small_corpus):
    res = run_eval(small_corpus / "dev.jsonl", tmp_path, model_dir=tiny_models, train_file=small_corpus / "train.jsonl")
    assert set(res["systems"]) == {"diplotag", "baseline (keywords + TF-IDF/LR)"}
    for name in ("results.json", "report.md", "errors.tsv", "diplotag.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert "stance_on_gold_spans" in saved["systems"]["diplotag"]
    assert (tmp_path / "errors.tsv").read_text().startswith("id\tkind")


def test_one_prediction_covering_two_statements_matches_only_one():
    both = {"start": 6, "end": 72, "label": "EQUIPMENT_TRANSFER", "stance": "support"}
    gold = [dict(GOLD[0], spans=[dict(s, label="EQUIPMENT_TRANSFER") for s in GOLD[0]["spans"]])]
    assert metrics.end_to_end(gold, pred(both))["overlap"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667}


def test_adjacent_spans_do_not_overlap_in_nervaluate():
    # gold "Japan will" [0:10), prediction "deliver" [11:18): touching end/start must not count as partial
    g = [{"id": "d", "text": TEXT, "spans": [{"start": 0, "end": 10, "label": "EQUIPMENT_TRANSFER"}]}]
    p = [{"id": "d", "text": TEXT, "spans": [{"start": 10, "end": 18, "label": "EQUIPMENT_TRANSFER"}]}]
    nv = metrics.nervaluate_scores(g, p, ["EQUIPMENT_TRANSFER"])["overall"]["partial"]
    assert nv["partial"] == 0 and nv["missed"] == 1 and nv["spurious"] == 1


def test_speed_bench_times_both_sides_alike_and_compares_their_answers(tiny_models, tmp_path):
    """The bench on tiny models: the pipeline gets lists at batch sizes 1, 8 and 32 and is
    timed like diplotag (warm-up, best of the runs); both answers are compared."""
    from diplotag.eval.bench import run_speed_bench

    r = run_speed_bench(str(tiny_models), n_docs=4, sizes=(2,), repeats=1, out_json=tmp_path / "bench.json")
    assert set(r["pipeline"]["seconds_by_batch_size"]) == {1, 8, 32} and r["pipeline"]["batch_size"] in (1, 8, 32)
    assert r["agreement"] >= 0.99 and r["diplotag"]["seconds"] > 0 and "best of 1 runs" in r["timing"]
    assert r["speedup_by_round"] == [r["speedup"]] and "rounds" not in r["timing"]
    with pytest.raises(ValueError, match="--rounds 0: at least one round"):
        run_speed_bench(str(tiny_models), n_docs=4, sizes=(), repeats=1, rounds=0)


@pytest.mark.parametrize("rounds,median", [(3, 3), (2, 2)])
def test_speed_bench_rounds_report_the_median_round_whole(tiny_models, monkeypatch, rounds, median):
    """Rounds timed in turn (here scripted, round k's figures all marked k): every round's speed-up
    is kept, and every figure reported (diplotag in bf16 and fp32, the gate, the pipeline, the matmul
    peak) is the median round's; of two rounds, the slower one's."""
    from diplotag.eval import bench

    seconds = {"bf16": [1.0, 2.0, 1.6], "fp32": [3.0, 4.0, 5.0]}  # the pipeline takes 10 s: 10×, 5×, 6.25×
    calls = {"bf16": 0, "fp32": 0, "pipeline": 0}

    def scripted(target, model, docs, *args):
        if target is bench._run_pipeline:
            k = calls["pipeline"] = calls["pipeline"] + 1
            return {"seconds": 10.0, "batch_size": 8, "peak_rss_mb": k, "seconds_by_batch_size": {8: 10.0},
                    "spans": [[] for _ in docs]}
        precision = args[-2]
        k = calls[precision] = calls[precision] + 1
        return {"seconds": seconds[precision][k - 1], "peak_rss_mb": k, "gated": [False] * len(docs),
                "spans": [[] for _ in docs], "gate_seconds": k / 10, "statement_documents_seconds": k / 10}

    peaks = iter([100.0, 200.0, 300.0])
    monkeypatch.setattr(bench, "_in_fresh_process", scripted)
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda threads, precision: next(peaks))
    r = bench.run_speed_bench(str(tiny_models), n_docs=4, repeats=1, precision="bf16", mix=0.5, rounds=rounds)
    assert r["speedup_by_round"] == [10.0, 5.0, 6.25][:rounds] and r["speedup"] == r["speedup_by_round"][median - 1]
    assert r["diplotag"]["seconds"] == seconds["bf16"][median - 1] and r["diplotag"]["peak_rss_mb"] == median
    assert r["diplotag_fp32"]["seconds"] == seconds["fp32"][median - 1] and r["pipeline"]["peak_rss_mb"] == median
    assert r["gate"]["gate_seconds"] == median / 10 and r["matmul_peak_gflops"] == 100.0 * median
    assert f"{rounds} rounds" in r["timing"] and "speed-ups by round: 10.00×, 5.00×" in r["timing"]
