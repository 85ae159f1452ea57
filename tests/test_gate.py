"""The relevance gate: labelled texts in, `diplotag train classifier` (generic in its labels),
`tag --gate` (skipped documents keep their record, marked), the mixed-stream workload, the
eval's gate figures, and bf16 inference."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from diplotag.cli import main
from diplotag.data.convert import read_labelled_texts
from test_train import tiny_config

BEAT = "Japan will deliver two coastal radars to the Philippine Navy next year, the ministry said."
OFFSIDE = "United beat City 3-1 on Saturday, with two late goals from the substitute striker."


def test_labelled_texts_from_jsonl_and_tsv_and_errors_that_name_the_line(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"id": "x", "text": BEAT, "label": "relevant"}) + "\n\n"
                     + json.dumps({"text": OFFSIDE, "label": "offtopic"}) + "\n")
    assert [(r["id"], r["label"]) for r in read_labelled_texts(jsonl)] == [("x", "relevant"), ("2", "offtopic")]
    tsv = tmp_path / "a.tsv"
    tsv.write_text(f"label\ttext\nrelevant\t{BEAT}\noffside\t{OFFSIDE}\n")
    assert [r["label"] for r in read_labelled_texts(tsv)] == ["relevant", "offside"]
    tsv.write_text(f"label\tbody\nrelevant\t{BEAT}\n")
    with pytest.raises(ValueError, match=r"a.tsv:1: the header has no text column"):
        read_labelled_texts(tsv)
    jsonl.write_text(json.dumps({"text": BEAT, "label": "relevant"}) + "\n" + json.dumps({"text": OFFSIDE}) + "\n")
    with pytest.raises(ValueError, match=r"a.jsonl:2: record 2 needs a non-empty string `text` and `label`"):
        read_labelled_texts(jsonl)


def labelled_files(tmp_path, extra_label=None):
    rows = [("relevant", f"{BEAT} Report {i}.") for i in range(12)] + [("offtopic", f"{OFFSIDE} Match {i}.") for i in range(12)]
    if extra_label:
        rows.append((extra_label, "Rain is expected across the north on Tuesday."))
    for name in ("train", "dev"):
        (tmp_path / f"{name}.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for l, t in rows))
    return tmp_path / "train.tsv", tmp_path / "dev.tsv"


def test_a_classifier_trains_from_tsv_into_a_standard_folder(tmp_path, tiny_base, small_corpus):
    from transformers import AutoModelForSequenceClassification

    train, dev = labelled_files(tmp_path)
    path = tiny_config(tmp_path, tiny_base, small_corpus, task="gate", train_file=str(train), dev_file=str(dev),
                       max_length=32)
    assert main(["train", "classifier", "--config", str(path)]) == 0
    out = tmp_path / "gate"
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "relevant", 1: "offtopic"}
    stamp = json.loads((out / "stamp.json").read_text())
    assert {"eval_macro_f1", "eval_recall_relevant", "eval_recall_offtopic"} <= set(stamp["dev_metrics"])
    assert "Per-class dev scores" in (out / "README.md").read_text()
    # the checkpoint is chosen as `tag --gate` decides, both stages together: what it must pass first,
    # then what it skips (24 dev documents: the second weighs under one document's worth of the first)
    dev = stamp["dev_metrics"]
    assert yaml.safe_load(Path(path).read_text())["best_metric"] == "gate_pass_then_skip"
    assert dev["eval_gate_pass_then_skip"] == pytest.approx(dev["eval_gate_recall_relevant"] + dev["eval_gate_recall_offtopic"] / 25)
    # configs/gate.yaml's word prefilter, fitted beside it, with its dev scores on the card; it ships
    # with the gate and loads with it
    from diplotag.model.gate import PREFILTER_FILES, WordPrefilter
    from diplotag.train.common import ship_as_default

    assert "prefilter_c" in yaml.safe_load(Path(path).read_text()) and "## The prefilter" in (out / "README.md").read_text()
    ship_as_default(out, tmp_path / "shipped" / "gate")
    assert all((tmp_path / "shipped" / "gate" / name).exists() for name in PREFILTER_FILES)
    shipped = WordPrefilter.from_pretrained(tmp_path / "shipped" / "gate")
    config = yaml.safe_load(Path(path).read_text())
    assert (shipped.threshold, shipped.keep_threshold) == (config["prefilter_threshold"], config["prefilter_keep_threshold"])
    # a run without one, into the same folder, leaves none of the earlier run's behind
    path.write_text(yaml.safe_dump(dict(yaml.safe_load(path.read_text()), prefilter_c=None, best_metric="recall_relevant")))
    assert main(["train", "classifier", "--config", str(path)]) == 0
    assert not any((out / name).exists() for name in PREFILTER_FILES) and "## The prefilter" not in (out / "README.md").read_text()


def test_checkpoints_are_scored_as_the_gate_decides_losing_nothing_first():
    """`gate_metrics`: both stages' probabilities give the decision `tag --gate` makes (the
    prefilter alone where sure, else the mean, at the gate's threshold); a checkpoint that loses
    one beat document scores under one that loses none, however many off-topic ones it skips."""
    from types import SimpleNamespace

    from diplotag.model.gate import WordPrefilter
    from diplotag.train.classifier import gate_metrics

    prefilter = WordPrefilter(SimpleNamespace(), ["offtopic", "relevant"], np.zeros((1, 1)), np.zeros(1),
                              threshold=0.8, keep_threshold=0.02)
    labels = {0: "relevant", 1: "offtopic"}
    gold = np.array([0, 0, 1, 1])
    first = np.array([0.01, 0.4, 0.85, 0.6])  # sure (kept), unsure, sure (skipped), unsure
    careful = gate_metrics(prefilter, first, np.array([0.99, 0.5, 0.0, 0.3]), gold, labels)
    assert careful == {"gate_recall_relevant": 1.0, "gate_recall_offtopic": 0.5, "gate_pass_then_skip": 1.0 + 0.5 / 5}
    bold = gate_metrics(prefilter, first, np.array([0.0, 0.7, 0.0, 0.9]), gold, labels)  # the mean skips all
    assert (bold["gate_recall_relevant"], bold["gate_recall_offtopic"]) == (0.5, 1.0)
    assert bold["gate_pass_then_skip"] < careful["gate_pass_then_skip"]


def test_a_shallower_classifier_keeps_the_first_layers_of_its_base_in_both_its_forms(tmp_path, tiny_base, small_corpus):
    """`encoder_layers: 1` of the two-layer tiny base: the merged model and the shipped adapter
    both load (as `tag --gate` loads them) with one layer, the base's first."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    from diplotag.model.tagger import load_model

    train, dev = labelled_files(tmp_path)
    path = tiny_config(tmp_path, tiny_base, small_corpus, task="gate", train_file=str(train), dev_file=str(dev),
                       max_length=32, encoder_layers=1, lora={"r": 4, "alpha": 8, "dropout": 0.0,
                                                                "target_modules": ["query", "value"]})
    assert main(["train", "classifier", "--config", str(path)]) == 0
    out = tmp_path / "gate"
    for folder in (out, out / "adapter"):
        model = load_model(folder, AutoModelForSequenceClassification)
        assert model.config.num_hidden_layers == 1 and len(model.bert.encoder.layer) == 1
    base_layer = AutoModel.from_pretrained(tiny_base).encoder.layer[0].intermediate.dense.weight
    assert torch.equal(model.bert.encoder.layer[0].intermediate.dense.weight, base_layer)  # not a LoRA target


def test_a_class_missing_from_the_config_is_refused_before_training(tmp_path, tiny_base, small_corpus, capsys):
    train, dev = labelled_files(tmp_path, extra_label="weather")
    path = tiny_config(tmp_path, tiny_base, small_corpus, task="gate", train_file=str(train), dev_file=str(dev))
    assert main(["train", "classifier", "--config", str(path)]) == 2
    assert "labels not in the config's labels ['relevant', 'offtopic']: 'weather'" in capsys.readouterr().err


@pytest.fixture()
def gated_models(tmp_path, tiny_models, default_tokenizer):
    """The tiny tagger and stance model with a tiny gate that calls every document off-topic."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    root = tmp_path / "models"
    shutil.copytree(tiny_models, root)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=default_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, id2label={0: "relevant", 1: "offtopic"}, label2id={"relevant": 0, "offtopic": 1})
    gate = BertForSequenceClassification(config)
    gate.classifier.bias.data = torch.tensor([-20.0, 20.0])
    gate.save_pretrained(root / "gate")
    default_tokenizer.save_pretrained(root / "gate")
    (root / "gate" / "diplotag_config.yaml").write_text(yaml.safe_dump({"task": "classifier", "max_length": 32}))
    return root


def test_the_prefilter_reads_as_scikit_learn_fitted_it_in_two_classes_or_three(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from diplotag.model.gate import WordPrefilter

    texts = [f"{BEAT} Report {i}." for i in range(6)] + [f"{OFFSIDE} Match {i}." for i in range(6)] + [
        f"Rain and wind across the north, report {i}." for i in range(6)]
    labels = ["relevant"] * 6 + ["offtopic"] * 6 + ["weather"] * 6
    for n in (12, 18):
        fitted = WordPrefilter.fit(texts[:n], labels[:n], c=10, keep_threshold=0.05 if n == 12 else None)
        sklearn = LogisticRegression(C=10, class_weight="balanced", max_iter=5000).fit(
            fitted.vectorizer.transform(texts[:n]), labels[:n])
        fitted.save_pretrained(tmp_path)
        loaded = WordPrefilter.from_pretrained(tmp_path)
        new = ["The navy will deliver radars.", "A late goal on Saturday.", "Rain on Tuesday."]
        assert loaded.labels == sklearn.classes_.tolist() and loaded.keep_threshold == fitted.keep_threshold
        assert loaded.probabilities(new) == pytest.approx(sklearn.predict_proba(fitted.vectorizer.transform(new)), abs=1e-6)
        assert [loaded.labels[i] for i in loaded.probabilities(new[: n // 6]).argmax(1)] == ["relevant", "offtopic", "weather"][: n // 6]
    # a prefilter saved before it had a keep threshold keeps nothing alone
    saved = json.loads((tmp_path / "prefilter.json").read_text())
    (tmp_path / "prefilter.json").write_text(json.dumps({k: v for k, v in saved.items() if k != "keep_threshold"}))
    older, rejected = WordPrefilter.from_pretrained(tmp_path), np.array([0.0, 0.5, 0.95])
    assert older.keep_threshold is None and older.sure(rejected).tolist() == [False, False, True]


def test_the_prefilter_decides_first_and_the_classifier_reads_only_what_it_passes(gated_models):
    """The prefilter is sure the football report is off-topic: it is gated at the prefilter's score
    and the classifier (which calls everything off-topic) never reads it; the beat report goes on to
    the classifier, and the mean of the two scores gates it, unless the prefilter is as sure of the
    beat as its keep_threshold says. Over the prefilter's threshold, the classifier reads both."""
    import torch

    from diplotag.model.gate import WordPrefilter
    from diplotag.model.tagger import Tagger

    WordPrefilter.fit([f"{BEAT} Report {i}." for i in range(6)] + [f"{OFFSIDE} Match {i}." for i in range(6)],
                      ["relevant"] * 6 + ["offtopic"] * 6, c=100, threshold=0.6).save_pretrained(gated_models / "gate")
    tagger = Tagger.from_pretrained(gated_models, device="cpu", gate=True)
    read = []
    tagger.gate_model.register_forward_pre_hook(lambda m, args, kw: read.append(len(kw["input_ids"])), with_kwargs=True)
    first = tagger.gate_prefilter.probabilities([BEAT, OFFSIDE])[:, tagger.gate_prefilter.labels.index("offtopic")]
    assert first[0] < 0.5 and 0.6 <= first[1] < 0.99
    out = tagger.tag([BEAT, OFFSIDE])
    assert read == [1] and [r["gated"] for r in out] == [True, True] and tagger.gate_scores([]) == []
    both = [round((1 + float(p)) / 2, 4) for p in first]  # the classifier's 1 and the prefilter's
    assert [r["gate_score"] for r in out] == [both[0], round(float(first[1]), 4)]
    tagger.gate_threshold = 2.0  # as the eval runs it, to apply the gate after the fact: the same scores
    assert [round(p, 4) for p in tagger.gate_scores([BEAT, OFFSIDE])] == [r["gate_score"] for r in out]
    tagger.gate_threshold = 0.5
    tagger.gate_prefilter.keep_threshold = float(first[0])  # sure of the beat: kept at its score, unread
    out = tagger.tag([BEAT, OFFSIDE])
    assert read == [1, 1] and [r["gated"] for r in out] == [False, True] and out[0]["gate_score"] == round(float(first[0]), 4)
    tagger.gate_prefilter.keep_threshold = None
    tagger.gate_prefilter.threshold = float(first[1]) + 0.001  # not sure enough now: the mean decides
    out = tagger.tag([BEAT, OFFSIDE])
    assert read == [1, 1, 2] and all(r["gated"] for r in out) and [r["gate_score"] for r in out] == both
    # a classifier that says 0.4 for everything would pass both alone; the mean skips the football
    # report, which the prefilter puts at 0.6 or more, and passes the beat report, under 0.5 for both
    tagger.gate_model.classifier.weight.data.zero_()
    tagger.gate_model.classifier.bias.data = torch.tensor([0.0, float(np.log(0.4 / 0.6))])
    out = tagger.tag([BEAT, OFFSIDE])
    assert [r["gated"] for r in out] == [False, True]
    assert [r["gate_score"] for r in out] == [round((0.4 + float(p)) / 2, 4) for p in first]


def test_gated_documents_keep_their_record_and_are_counted(gated_models, tmp_path):
    from diplotag.model.batch import run_tag_job, summary
    from diplotag.model.tagger import Tagger

    docs = [{"id": "a", "text": BEAT}, {"id": "b", "text": OFFSIDE}]
    ungated = Tagger.from_pretrained(gated_models, device="cpu").tag(docs)
    assert any(r["spans"] for r in ungated) and all("gated" not in r for r in ungated)
    tagger = Tagger.from_pretrained(gated_models, device="cpu", gate=True)
    out = tagger.tag(docs)
    assert [(r["id"], r["gated"], r["spans"]) for r in out] == [("a", True, []), ("b", True, [])]
    assert all(r["gate_score"] > 0.99 for r in out)
    tagger.gate_threshold = 1.5  # nothing reaches it: every document is tagged as without the gate
    out = tagger.tag(docs)
    assert [r["spans"] for r in out] == [r["spans"] for r in ungated] and not any(r["gated"] for r in out)
    tagger.gate_threshold = 0.5
    counts = run_tag_job(tagger, iter(docs), tmp_path / "out.jsonl", progress=False)
    assert (counts["tagged"], counts["gated"]) == (2, 2)
    assert "2 tagged (2 off-topic by the gate)" in summary(counts)
    assert [json.loads(l)["gated"] for l in open(tmp_path / "out.jsonl")] == [True, True]


def test_in_one_batch_the_gated_document_is_skipped_and_the_other_tagged_as_without_the_gate(gated_models):
    from diplotag.model.tagger import Tagger

    docs = [{"id": "a", "text": BEAT}, {"id": "b", "text": BEAT + " " + OFFSIDE}, {"id": "c", "text": BEAT, "gated": True}]
    ungated = Tagger.from_pretrained(gated_models, device="cpu").tag(docs)
    tagger = Tagger.from_pretrained(gated_models, device="cpu", gate=True)
    tagger.gate_scores = lambda texts: [0.9 if OFFSIDE in t else 0.1 for t in texts]  # the plumbing, not the model
    out = tagger.tag(docs)
    assert [r["gated"] for r in out] == [False, True, False]  # the input's own "gated" is not kept
    assert [r["spans"] for r in out] == [ungated[0]["spans"], [], ungated[2]["spans"]] and ungated[1]["spans"]


def test_parquet_rows_say_which_documents_the_gate_skipped(gated_models, tmp_path):
    import pyarrow.parquet as pq

    from diplotag.model.batch import run_parquet_job
    from diplotag.model.tagger import Tagger

    tagger = Tagger.from_pretrained(gated_models, device="cpu", gate=True)
    out = tmp_path / "out.parquet"
    run_parquet_job(tagger, iter([{"id": "a", "text": BEAT}]), out, rows="statements", progress=False)
    rows = pq.read_table(out).to_pylist()
    assert [(r["id"], r["gated"], r["statement"]) for r in rows] == [("a", True, None)]


def test_a_model_without_a_gate_says_so(tiny_models):
    from diplotag.model.tagger import Tagger

    with pytest.raises(FileNotFoundError, match="no relevance gate"):
        Tagger.from_pretrained(tiny_models, device="cpu", gate=True)


def test_bf16_inference_runs_and_bad_precisions_are_refused(tiny_models):
    from diplotag.model.tagger import Tagger

    import torch

    dtypes = {}
    for precision in ("bf16", "fp32"):  # bf16: the matrix multiplies (the heads' among them); fp32 weights either way
        tagger = Tagger.from_pretrained(tiny_models, device="cpu", precision=precision)
        tagger.model.classifier.register_forward_hook(lambda m, i, out, p=precision: dtypes.update({p: out.dtype}))
        records = tagger.tag([BEAT])
        assert records[0]["spans"] and all(0 <= s["score"] <= 1 for s in records[0]["spans"])
        assert tagger.model.classifier.weight.dtype == torch.float32
    assert dtypes == {"bf16": torch.bfloat16, "fp32": torch.float32}
    with pytest.raises(ValueError, match="precision is one of fp32, bf16"):
        Tagger.from_pretrained(tiny_models, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="int8 backend runs in fp32"):
        Tagger.from_pretrained(tiny_models, device="cpu", backend="int8", precision="bf16")


def test_the_mixed_stream_holds_the_share_of_test_documents_asked_for():
    from diplotag.eval.bench import mixed_workload

    docs = mixed_workload(50, 0.1)
    beat = [d for d in docs if not d["meta"].get("offtopic")]
    assert len(docs) == 50 and len(beat) == 5 and len({d["id"] for d in docs}) == 50
    assert mixed_workload(50, 0.1) == docs  # seeded
    with pytest.raises(ValueError, match="needs"):
        mixed_workload(100_000, 0.1)


def test_the_stream_bench_says_where_the_time_goes(gated_models):
    """`bench speed --mix`: the gate's own time, and the tagger's on the stream's statement-bearing
    documents alone, whose ratio to the pipeline bounds what any gate could reach."""
    from diplotag.eval.bench import run_speed_bench
    from diplotag.eval.readme import speed_table

    r = run_speed_bench(str(gated_models), n_docs=4, mix=0.5, repeats=1)
    g = r["gate"]
    assert g["statement_documents_passed"] == 0 and g["offtopic_gated"] == g["offtopic_documents"] == 2  # it rejects all
    # The gate rejects every document, so the pipeline and the gate alone time the same few ms of work,
    # separately: either may come out ahead (CI once read 0.012 s for the gate against 0.01 s).
    assert 0 <= g["gate_seconds"] <= r["diplotag"]["seconds"] + 0.1 and g["statement_documents_seconds"] > 0
    assert g["speedup_bound"] == pytest.approx(r["pipeline"]["seconds"] / g["statement_documents_seconds"], rel=0.1)  # of rounded times
    assert any("even a gate that cost nothing" in line for line in speed_table(r))


def test_the_eval_applies_the_gate_after_the_fact():
    from diplotag.eval.report import gate_results

    span = {"start": 0, "end": 5, "label": "EQUIPMENT_TRANSFER", "stance": "support"}
    gold = [{"id": "a", "text": "x", "spans": [span]}, {"id": "b", "text": "y", "spans": [span]},
            {"id": "c", "text": "z", "spans": []}]
    pred = [dict(g, gate_score=p) for g, p in zip(gold, (0.1, 0.9, 0.2))]
    summary, gated = gate_results(gold, pred)
    assert (summary["statement_documents"], summary["statement_documents_passed"], summary["recall"]) == (2, 1, 0.5)
    assert summary["no_statement_documents_passed"] == 1
    assert [len(p["spans"]) for p in gated] == [1, 0, 0] and [p["gated"] for p in gated] == [False, True, False]


def test_a_parquet_file_from_before_the_gate_columns_resumes(gated_models, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from diplotag.model.batch import GATE_COLUMNS, parquet_schema, record_rows, run_parquet_job, stance_labels
    from diplotag.model.tagger import Tagger

    tagger = Tagger.from_pretrained(gated_models, device="cpu")
    labels = stance_labels(tagger)
    old = pa.schema([f for f in parquet_schema("documents", labels) if f.name not in GATE_COLUMNS])
    first = tagger.tag([{"id": "a", "text": BEAT}])[0]
    rows = [{k: v for k, v in row.items() if k not in GATE_COLUMNS} for row in record_rows(first, "documents", labels)]
    out = tmp_path / "out.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=old), out)
    docs = [{"id": "a", "text": BEAT}, {"id": "b", "text": OFFSIDE}]
    run_parquet_job(tagger, iter(docs), out, resume=True, progress=False)
    table = pq.read_table(out)
    assert table.column_names[-4:] == [*GATE_COLUMNS, "error", "source"]
    assert table.column("id").to_pylist() == ["a", "b"] and table.column("gated").to_pylist() == [None, None]
