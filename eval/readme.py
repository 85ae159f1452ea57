"""Regenerate the README's results section from the evaluation outputs under eval/results/, so the
numbers there always come from a run (`diplotag eval --readme`)."""
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "eval" / "results"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# (row label, folder under eval/results/) of the corpus-v2 comparison
CROSS = [("new (shipped now)", "v2 (all of `data/corpus/test.jsonl`)", "test"),
         ("before the gazetteer of leaders, forces and state media", "v2 (all of `data/corpus/test.jsonl`)",
          "before-gazetteer-test"),
         ("before the documents in new voices joined the corpus", "v2 (all of `data/corpus/test.jsonl`)",
          "before-voices-test"),
         ("before the business-register articles joined the corpus", "v2 (all of `data/corpus/test.jsonl`)",
          "before-beat-test"),
         ("before the whole-article negatives (after the completeness pass)", "v2 (all of `data/corpus/test.jsonl`)",
          "before-negatives-test"),
         ("before the completeness pass (corpus v2 as first written)", "v2 (all of `data/corpus/test.jsonl`)",
          "previous-models-new-test"),
         ("new (shipped now)", "v1 (its 68 documents written before v2)", "new-models-old-test"),
         ("old (before corpus v2)", "v2 (all of `data/corpus/test.jsonl`)", "old-models-new-test"),
         ("old (before corpus v2)", "v1 (its 68 documents written before v2)", "old-models-old-test")]


def _load(name):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def test_table(res) -> list[str]:
    lines = [f"Test split (`{res['data']}`, {res['documents']} documents, {res['gold_spans']} statements), "
             "from `diplotag eval --model default --data data/corpus/test.jsonl --out eval/results/test`:", "",
             "| system | span P | span R | span F1 | partial F1 | stance macro F1 (gold spans) | end-to-end F1 "
             "| span ECE | stance ECE |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["systems"].items():
        m, st = r["seqeval"]["micro avg"], r.get("stance_on_gold_spans", {})
        stance = lambda k: format(st[k], ".3f") if k in st else "–"  # noqa: E731 - a system without stance on gold spans
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | **{m['f1-score']:.3f}** | "
                     f"{r['nervaluate']['overall']['partial']['f1']:.3f} | {stance('macro_f1')} | "
                     f"{r['end_to_end']['strict']['f1']:.3f} | {r['span_calibration'].get('ece', float('nan')):.3f} | "
                     f"{stance('ece')} |")
    lines += ["", "Span scores are seqeval entity-level, strict IOB2; partial F1 is nervaluate's; end to end, a "
              "statement counts only with the right offsets, label and stance; ECE is the expected calibration "
              "error of the (dev-calibrated) span and stance scores. Full report with per-label scores, "
              "confusion matrices and reliability plots: `eval/results/test/report.md`."]
    for name, r in res["systems"].items():
        if "holder_on_gold_spans" in r:
            h, e2e = r["holder_on_gold_spans"], r["end_to_end_holder"]
            lines += ["", f"Holders ({name}): accuracy **{h['accuracy']:.3f}** on the {h['n']} gold statements "
                      f"(with the model's own stance"
                      + (f"; {h['accuracy_with_gold_stance']:.3f} given the gold stance" if "accuracy_with_gold_stance" in h else "")
                      + f"), against {h['baseline_accuracy']:.3f} for the baseline that "
                      f"takes the nearest actor named before the statement; end to end (a predicted statement "
                      f"overlapping a gold one of its label, with the right holder) P {e2e['precision']:.3f}, "
                      f"R {e2e['recall']:.3f}, F1 {e2e['f1']:.3f}."]
        if "stance_by_holder_input" in r:
            given = r["stance_by_holder_input"]
            lines += ["", f"Stance with its holder ({name}; the stance model reads the holder): macro F1 on the gold "
                      f"spans {given['predicted']['macro_f1']:.3f} with the predicted holder, as `diplotag tag` "
                      f"gives it, against {given['unknown']['macro_f1']:.3f} without a holder and "
                      f"{given['gold']['macro_f1']:.3f} with the gold one."]
    return lines


def cross_table(rows) -> list[str]:
    """The old shipped models on the new test split and the new ones on the old test split."""
    lines = ["The corpus against the models before it (`diplotag eval` on each pair; old models: the LoRA "
             "adapters shipped before corpus v2, decoded by today's decoder; models before the completeness pass: "
             "the full fine-tune shipped on corpus v2 as its writers first marked it; models before the whole-article "
             "negatives: the same, retrained after the completeness pass; models before the business-register "
             "articles: the same, retrained with the negatives; models before the documents in new voices: the "
             "same, retrained with the business-register articles; models before the gazetteer of leaders, forces "
             "and state media: the same, retrained with the documents in new voices (the holder model alone "
             "retrained since); the v1 test split is the test documents whose ids do not start with `heldout-`; "
             "holder accuracy on the gold statements, with the model's own stance, where the models had holders):", "",
             "| models | test split | documents | span F1 | partial F1 | stance macro F1 (gold spans) | end-to-end F1 "
             "| holder accuracy |", "|---|---|---|---|---|---|---|---|"]
    for label, split, res in rows:
        r = res["systems"]["diplotag"]
        lines.append(f"| {label} | {split} | {res['documents']} | {r['seqeval']['micro avg']['f1-score']:.3f} | "
                     f"{r['nervaluate']['overall']['partial']['f1']:.3f} | "
                     f"{r.get('stance_on_gold_spans', {}).get('macro_f1', float('nan')):.3f} | "
                     f"{r['end_to_end']['strict']['f1']:.3f} | "
                     f"{format(r['holder_on_gold_spans']['accuracy'], '.3f') if 'holder_on_gold_spans' in r else '–'} |")
    return lines


def re3d_table(res) -> list[str]:
    f1s = [r["test_macro_f1"] * 100 for r in res["runs"]]
    mean, sd = statistics.mean(f1s), (statistics.stdev(f1s) if len(f1s) > 1 else 0.0)
    lines = [f"re3d test macro F1 (seqeval), `{res['base_model']}`, {res['finetune']} fine-tuning, from "
             f"`{res['command']}`:", "", "| model | macro F1 | source |", "|---|---|---|",
             f"| diplotag tagger, MiniLM-L6 (22M params), {len(f1s)} seeds ({', '.join(str(r['seed']) for r in res['runs'])}) "
             f"| **{mean:.2f} ± {sd:.2f}** | this repository, CPU |"]
    lines += [f"| {name} | {v} | ConfliBERT paper, Table 3 (10 seeds) |" for name, v in res["paper"].items()]
    lines += ["", "Per seed: " + ", ".join(f"seed {r['seed']}: {r['test_macro_f1'] * 100:.2f} "
                                           f"({r['epochs_run']} epochs, {r['train_seconds']:.0f} s)" for r in res["runs"])]
    if res.get("notes"):
        lines += ["", res["notes"]]
    return lines


def speed_table(res) -> list[str]:
    w, a, b = res["workload"], res["diplotag"], res["pipeline"]
    precision, gate = res.get("precision", "fp32"), ", relevance gate" if "gate" in res else ""
    what = (f"a news stream of {w['documents']} documents, {100 * w['mix']:.0f}% from the test split and the rest "
            "held-out off-topic articles" if "mix" in w else f"{w['documents']} articles")
    lines = [f"Batch inference on this 2-core CPU, {what} of {w['words_min']} to {w['words_max']} "
             f"words ({w['tokens']} tokens), {res['threads']} threads, from `{res['command']}`:", "",
             "| system | seconds | documents/s | tokens/s | peak memory | speed-up | statements agreeing |",
             "|---|---|---|---|---|---|---|",
             f"| `diplotag tag` (backend {res['backend']}, {precision}{gate}) | {a['seconds']} | {a['docs_per_s']} | "
             f"{a['tokens_per_s']:.0f} | {a['peak_rss_mb']} MB | **{res['speedup']}×** | {100 * res['agreement']:.1f}% |"]
    if "diplotag_fp32" in res:
        f = res["diplotag_fp32"]
        lines.append(f"| `diplotag tag` (backend {res['backend']}, fp32{gate}) | {f['seconds']} | {f['docs_per_s']} | "
                     f"{f['tokens_per_s']:.0f} | {f['peak_rss_mb']} MB | {f['speedup']}× | {100 * f['agreement']:.1f}% |")
    lines += [f"| transformers `pipeline` (fp32, token- then text-classification over lists, batch size "
              f"{b.get('batch_size', 1)}, our decoding) | {b['seconds']} | {b['docs_per_s']} | "
              f"{b['tokens_per_s']:.0f} | {b['peak_rss_mb']} MB | 1× | |", "",
              "Statements agreeing: the share of statements (offsets, label, stance, holder) found by both, of those found "
              f"by either. Compute: {res['achieved_gflops']} GFLOP/s against a measured {precision} matmul peak of "
              f"{res['matmul_peak_gflops']} GFLOP/s (model FLOPs utilisation {100 * res['model_flops_utilisation']:.0f}%)."]
    if res["scaling"]:
        lines[-1] += (" Cost per 1,000 tokens at three workload sizes (one run each, on another draw of articles; single runs on this machine vary by a third): "
                      + ", ".join(f"{s['documents']} documents ({s['tokens']} tokens): {s['seconds_per_1k_tokens']:.3f} s"
                                  for s in res["scaling"]) + ".")
    if "gate" in res:
        g = res["gate"]
        lines += ["", f"The gate passed {g['statement_documents_passed']} of the stream's {g['statement_documents']} "
                  f"statement-bearing documents and skipped {g['offtopic_gated']} of its {g['offtopic_documents']} "
                  f"off-topic ones; on the documents it passed, {100 * g['agreement_on_passed']:.1f}% of statements agree "
                  "with the pipeline's (which tags every document)."]
        if g.get("speedup_bound"):  # a stream with statement-bearing documents
            lines[-1] += (f" Where the time goes: the gate alone takes {g['gate_seconds']} of the {a['seconds']} s; "
                          f"tagging only the {g['statement_documents']} statement-bearing documents takes "
                          f"{g['statement_documents_seconds']} s, so even a gate that cost nothing and passed nothing "
                          f"else would reach {g['speedup_bound']}× the pipeline.")
    if "seconds_by_batch_size" in b:
        lines += ["", "The pipeline runs at its best batch size (seconds at batch sizes "
                  + ", ".join(f"{k}: {v}" for k, v in b["seconds_by_batch_size"].items()) + f"); {res['timing']}."]
    lines += ["", "The pipeline's windows (its own `stride`) are decoded by diplotag's decoder in the pipeline's "
              "`postprocess` (merged windows, most probable valid IOB2 sequence, shortest statement) rather than "
              "by an `aggregation_strategy`, whose per-word argmax answers differ from ours; tokenization, windows "
              "and forward passes stay the pipeline's, so the ratio compares the same work with the same answers."]
    if res["agreement"] < 0.99 and "gate" not in res:
        lines += ["", f"**The answers differ ({100 * res['agreement']:.1f}% agreement, short of the 99% the "
                  "comparison needs)**: the speed-up is not a like-for-like figure."]
    return lines


def gate_lines(res) -> list[str]:
    g = res.get("gate")
    if not g:
        return []
    gated = res["systems"].get("diplotag with the gate")
    plain = res["systems"]["diplotag"]
    lines = [f"The relevance gate on the test split (threshold {g['threshold']}): it passes "
             f"**{g['statement_documents_passed']} of {g['statement_documents']}** statement-bearing documents "
             f"(recall {g['recall'] or 0:.3f}) and {g['no_statement_documents_passed']} of {g['no_statement_documents']} "
             "without a statement"]
    t = g.get("labelled_texts")
    if t and "offtopic" in t:
        lines[-1] += (f"; of the {t['offtopic']['documents']} held-out off-topic articles (`{t['file']}`) it skips "
                      f"{t['offtopic']['documents'] - t['offtopic']['passed']} ({100 * t['offtopic_rejected_share']:.1f}%)")
    if gated:
        lines[-1] += (f". End-to-end span F1 without the gate {plain['end_to_end']['strict']['f1']:.3f} strict / "
                      f"{plain['end_to_end']['overlap']['f1']:.3f} overlap, with it {gated['end_to_end']['strict']['f1']:.3f} / "
                      f"{gated['end_to_end']['overlap']['f1']:.3f}.")
    return lines


def ablation_table(res) -> list[str]:
    lines = ["Tagger choices on the dev split, from `diplotag bench ablations` (one `diplotag train tagger` run "
             "each): whole documents decoded as `diplotag tag` does (seqeval strict P/R/F1, nervaluate partial "
             "F1) with the best checkpoint, and the in-loop dev F1 after each epoch (decoded documents, strict; "
             "in brackets seqeval's strict IOB2 over argmax tags, the metric that used to choose checkpoints):", "",
             "| run | settings | dev P | dev R | dev F1 | partial F1 | dev F1 per epoch [argmax] | training time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        d = r["dev_documents"]
        epochs = ", ".join(f"{e['eval_f1']:.2f} [{e.get('eval_token_f1', float('nan')):.2f}]"
                           for e in r.get("dev_per_epoch") or [])
        lines.append(f"| {r['name']} | {r['settings']} | {d['precision']:.3f} | {d['recall']:.3f} | **{d['f1']:.3f}** | "
                     f"{d['partial_f1']:.3f} | {epochs or '–'} | {r['train_seconds']:.0f} s |")
    return lines


def results_section() -> str:
    parts = []
    for name, render in (("test/results.json", test_table), ("ablations.json", ablation_table),
                         ("re3d.json", re3d_table), ("bench.json", speed_table), ("bench-mix.json", speed_table)):
        res = _load(name)
        if res:
            parts += render(res) + [""]
        if res and name == "test/results.json" and res.get("gate"):
            parts += gate_lines(res) + [""]
        if name == "test/results.json":
            cross = [(label, split, _load(f"{folder}/results.json")) for label, split, folder in CROSS]
            if all(res for *_, res in cross):
                parts += cross_table(cross) + [""]
    return "\n".join(parts) or "No results yet: run the commands above.\n"


def update_readme(readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme}: no {BEGIN} … {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{results_section()}{END}{tail}", encoding="utf-8")
