"""`diplotag eval`: score a model (or a predictions file) and the two baselines on a gold file;
write results.json, report.md, PNG plots and errors.tsv."""
import json
import re
from pathlib import Path

from ..data.markup import LABELS
from ..model.base import DEFAULT_MODELS
from ..data.schema import load_corpus
from ..data.sentences import sentence_bounds, sentence_of
from ..model.gate import GATE_THRESHOLD
from . import metrics
from .baselines import KeywordTagger, TfidfStance


def score_system(gold, pred, stance_on_gold=None, labels=LABELS, holder_on_gold=None, stance_by_holder=None) -> dict:
    """Every metric of one system. `stance_on_gold`: (stances, probabilities) predicted for the
    gold spans in order, when the system can be given gold spans; `holder_on_gold`: (predicted,
    baseline, predicted with the gold stance) holders of the gold spans that record one; `stance_by_holder`: for a stance model
    that reads the holder, its (stances, probabilities) on the gold spans for each holder it was
    given ("unknown", "predicted", "gold")."""
    out = {"seqeval": metrics.seqeval_scores(gold, pred, labels),
           "nervaluate": metrics.nervaluate_scores(gold, pred, labels),
           "end_to_end": metrics.end_to_end(gold, pred),
           "label_confusion": metrics.label_confusion(gold, pred, labels),
           "span_calibration": metrics.span_calibration(gold, pred)}
    if stance_on_gold is not None:
        truth = [s["stance"] for r in gold for s in r["spans"]]
        out["stance_on_gold_spans"] = metrics.stance_scores(truth, *stance_on_gold)
    if holder_on_gold is not None:
        truth = [s["holder"] for r in gold for s in r["spans"] if s.get("holder")]
        out["holder_on_gold_spans"] = metrics.holder_scores(truth, *holder_on_gold)
        out["end_to_end_holder"] = metrics.end_to_end_holder(gold, pred)
    if stance_by_holder is not None:
        truth = [s["stance"] for r in gold for s in r["spans"]]
        out["stance_by_holder_input"] = {given: {k: v for k, v in metrics.stance_scores(truth, *answers).items()
                                                 if k in ("macro_f1", "accuracy")}
                                         for given, answers in stance_by_holder.items()}
    return out


def load_tagger(model_dir, **kw):
    """The models to evaluate. The gate, where the model has one, scores every document but skips
    none (a threshold above 1): `gate_results` applies it afterwards, so that one run gives the
    scores with and without it."""
    from ..model.tagger import Tagger

    root = DEFAULT_MODELS if str(model_dir) == "default" else Path(model_dir)
    return Tagger.from_pretrained(model_dir, gate=(root / "gate").is_dir(), gate_threshold=2.0, **kw)


def model_predictions(tagger, gold):
    """The model's output on the gold texts, and on the gold spans as `diplotag tag` reads them:
    (predictions, stance on gold spans, holders on gold spans, stance by the holder it was given)."""
    pred = tagger.tag([{"id": r["id"], "text": r["text"]} for r in gold])
    if tagger.stance_model is None:  # a tagger alone: no stance on gold spans to score
        return pred, None, None, None
    texts = [r["text"] for r in gold]
    spans = [[{k: s[k] for k in ("start", "end", "label")} for s in r["spans"]] for r in gold]

    def stance_of(spans_per_doc):
        tagger.predict_stance(texts, spans_per_doc)
        return ([s["stance"] for doc in spans_per_doc for s in doc],
                [[s["stance_scores"][k] for k in metrics.STANCES] for doc in spans_per_doc for s in doc])

    stance = stance_of(spans)
    holders = by_holder = None
    if tagger.holder_ranker is not None:  # gold spans, the model's own stance, as in `diplotag tag`
        tagger.predict_holders(texts, spans)
        has_holder = [[bool(s.get("holder")) for s in r["spans"]] for r in gold]
        kept = lambda spans_per_doc: [s["holder"] for doc, keep in zip(spans_per_doc, has_holder) for s, k in zip(doc, keep) if k]
        # and with the gold stance (no stance_scores: the ranker reads the label), so that the report
        # shows how much of the holders' error is the stance model's
        given = [[{k: s[k] for k in ("start", "end", "label", "stance")} for s in r["spans"]] for r in gold]
        tagger.predict_holders(texts, given)
        holders = (kept(spans), nearest_actor_holders(gold), kept(given))
        if tagger.stance_reads_holder:  # `tag` reads the stance again with the holder found
            by_holder = {"unknown": stance, "predicted": stance_of(spans),
                         "gold": stance_of([[dict(s, holder=g.get("holder")) for s, g in zip(doc, r["spans"])]
                                            for doc, r in zip(spans, gold)])}
            stance = by_holder["predicted"]
    return pred, stance, holders, by_holder


def gate_results(gold, pred, threshold=GATE_THRESHOLD) -> tuple[dict, list[dict]]:
    """What the relevance gate does to a gold file: how many documents that hold a statement it
    passes (its recall, which bounds every statement's), how many without one it passes, and the
    predictions as `tag --gate` gives them (a gated document keeps no statement)."""
    gated = [p["gate_score"] >= threshold for p in pred]
    bearing = [g for g, r in zip(gated, gold) if r["spans"]]
    empty = [g for g, r in zip(gated, gold) if not r["spans"]]
    summary = {"threshold": threshold, "statement_documents": len(bearing),
               "statement_documents_passed": len(bearing) - sum(bearing),
               "recall": round(1 - sum(bearing) / len(bearing), 4) if bearing else None,
               "no_statement_documents": len(empty), "no_statement_documents_passed": len(empty) - sum(empty)}
    return summary, [dict(p, spans=[] if g else p["spans"], gated=g) for p, g in zip(pred, gated)]


def offtopic_rejection(tagger, path, threshold=GATE_THRESHOLD) -> dict:
    """The gate on labelled texts (data/gate/test.jsonl: test documents and held-out off-topic
    articles): the share of each class it passes."""
    from ..data.build import OFFTOPIC
    from ..data.convert import read_labelled_texts

    records = read_labelled_texts(path)
    scores = tagger.gate_scores([r["text"] for r in records])
    out = {"file": str(path), "threshold": threshold}
    for cls in sorted({r["label"] for r in records}):
        mine = [p for p, r in zip(scores, records) if r["label"] == cls]
        out[cls] = {"documents": len(mine), "passed": sum(p < threshold for p in mine)}
    out["offtopic_rejected_share"] = round(1 - out[OFFTOPIC]["passed"] / out[OFFTOPIC]["documents"], 4) if OFFTOPIC in out else None
    return out


def nearest_actor_holders(gold) -> list[str]:
    """The holder baseline on the gold spans that record a holder: the last actor named before each."""
    from ..model.holder import gazetteer, nearest_preceding_actor

    out = []
    for r in gold:
        mentions = gazetteer().mentions(r["text"])
        out += [nearest_preceding_actor(r["text"], s, mentions) for s in r["spans"] if s.get("holder")]
    return out


def baseline_predictions(gold, train_records):
    pred = KeywordTagger().tag([{"id": r["id"], "text": r["text"]} for r in gold])
    stance = TfidfStance(train_records)
    e2e, _ = stance.predict(pred)
    it = iter(e2e)
    for r in pred:
        for s in r["spans"]:
            s["stance"] = next(it)
    return pred, stance.predict(gold)


def error_lines(gold, pred) -> list[str]:
    """Every false positive and false negative (strict: label and offsets), with its sentence."""
    lines = ["id\tkind\tlabel/stance\tspan\tsentence"]
    for g, p in zip(gold, pred):
        bounds = sentence_bounds(g["text"])
        key = lambda s: (s["start"], s["end"], s["label"])  # noqa: E731
        gold_keys, pred_keys = {key(s) for s in g["spans"]}, {key(s) for s in p["spans"]}
        for kind, spans, other in (("FN", g["spans"], pred_keys), ("FP", p["spans"], gold_keys)):
            for s in spans:
                if key(s) in other:
                    continue
                a, b = sentence_of(bounds, s["start"], s["end"]) if bounds else (0, len(g["text"]))
                flat = lambda t: " ".join(t.split())  # noqa: E731
                lines.append(f"{g['id']}\t{kind}\t{s['label']}/{s.get('stance')}\t{flat(g['text'][s['start']:s['end']])}"
                             f"\t{flat(g['text'][a:b])}")
    return lines


def slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-")


def plot(results: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for name, res in results["systems"].items():
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
        for ax, (title, cm) in zip(axes[:2], (("labels (O = missed / spurious)", res["label_confusion"]),
                                              ("stance on gold spans", res.get("stance_on_gold_spans", {}).get("confusion")))):
            if not cm:
                ax.axis("off")
                continue
            ax.imshow(cm["matrix"], cmap="Blues")
            ticks = [l.split("_")[0][:8] for l in cm["labels"]]
            ax.set_xticks(range(len(ticks)), ticks, rotation=30)
            ax.set_yticks(range(len(ticks)), ticks)
            ax.set_xlabel("predicted"), ax.set_ylabel("gold"), ax.set_title(title)
            for i, row in enumerate(cm["matrix"]):
                for j, v in enumerate(row):
                    ax.text(j, i, v, ha="center", va="center", fontsize=8)
        ax = axes[2]
        ax.plot([0, 1], [0, 1], ":", color="grey")
        for label, cal in (("span score", res.get("span_calibration", {})),
                           ("stance score", res.get("stance_on_gold_spans", {}))):
            table = cal.get("reliability")
            if table:
                ax.plot([t["confidence"] for t in table], [t["accuracy"] for t in table], "o-",
                        label=f"{label} (ECE {cal['ece']:.3f})")
        ax.set_xlabel("confidence"), ax.set_ylabel("accuracy"), ax.set_title("reliability"), ax.legend()
        fig.tight_layout()
        path = out_dir / f"{slug(name)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files.append(path.name)
    return files


def markdown(results: dict) -> str:
    lines = [f"# diplotag evaluation: `{results['data']}`", "", f"{results['documents']} documents, "
             f"{results['gold_spans']} gold statements."
             + (f" Holders by `{results['holder_model']}`." if results.get("holder_model") else ""), "",
             "| system | span P | span R | span F1 (seqeval strict) | partial F1 | type-overlap F1 | stance acc (gold spans) "
             "| stance macro F1 (gold spans) | end-to-end F1 strict | end-to-end F1 overlap | span ECE |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["systems"].items():
        micro, nv, st = r["seqeval"]["micro avg"], r["nervaluate"]["overall"], r.get("stance_on_gold_spans", {})
        lines.append(f"| {name} | {micro['precision']:.3f} | {micro['recall']:.3f} | {micro['f1-score']:.3f} | "
                     f"{nv['partial']['f1']:.3f} | {nv['ent_type']['f1']:.3f} | {st.get('accuracy', float('nan')):.3f} | "
                     f"{st.get('macro_f1', float('nan')):.3f} | {r['end_to_end']['strict']['f1']:.3f} | "
                     f"{r['end_to_end']['overlap']['f1']:.3f} | {r['span_calibration'].get('ece', float('nan')):.3f} |")
    for name, r in results["systems"].items():
        lines += ["", f"## {name}: per label", "", "| label | P | R | F1 (strict) | partial F1 | type-overlap F1 |",
                  "|---|---|---|---|---|---|"]
        for lab in LABELS:
            s, nv = r["seqeval"].get(lab, {}), r["nervaluate"].get(lab, {})
            lines.append(f"| {lab} | {s.get('precision', 0):.3f} | {s.get('recall', 0):.3f} | {s.get('f1-score', 0):.3f} | "
                         f"{nv.get('partial', 0):.3f} | {nv.get('ent_type', 0):.3f} |")
        lines += ["", f"![{name}]({slug(name)}.png)"]
    for name, r in results["systems"].items():
        if "holder_on_gold_spans" in r:
            h, e2e = r["holder_on_gold_spans"], r["end_to_end_holder"]
            lines += ["", f"## {name}: holders", "", "| measure | value |", "|---|---|",
                      f"| holder accuracy on gold statements | {h['accuracy']:.3f} (n={h['n']}) |",
                      f"| baseline: nearest preceding actor | {h['baseline_accuracy']:.3f} |",
                      *([f"| holder accuracy given the gold stance | {h['accuracy_with_gold_stance']:.3f} |"]
                        if "accuracy_with_gold_stance" in h else []),
                      f"| end to end (statement overlaps, label and holder right): P / R / F1 | "
                      f"{e2e['precision']:.3f} / {e2e['recall']:.3f} / {e2e['f1']:.3f} |"]
        if "stance_by_holder_input" in r:
            lines += [f"| stance macro F1 (gold spans), the holder given as {given} | {st['macro_f1']:.3f} |"
                      for given, st in r["stance_by_holder_input"].items()]
    if "gate" in results:
        g = results["gate"]
        lines += ["", "## The relevance gate", "", "| measure | value |", "|---|---|",
                  f"| statement-bearing documents passed (recall) | {g['statement_documents_passed']}/{g['statement_documents']} "
                  f"({'–' if g['recall'] is None else format(g['recall'], '.3f')}) |",
                  f"| documents without statements passed | {g['no_statement_documents_passed']}/{g['no_statement_documents']} |"]
        if "labelled_texts" in g:
            t = g["labelled_texts"]
            lines += [f"| {cls} documents of `{t['file']}` passed | {t[cls]['passed']}/{t[cls]['documents']} |"
                      for cls in t if isinstance(t[cls], dict)]
        lines.append(f"| threshold (off-topic probability) | {g['threshold']} |")
    lines += ["", "Errors of the first system (every false positive and negative, with its sentence): `errors.tsv`."]
    return "\n".join(lines) + "\n"


def run_eval(data_file, out_dir, model_dir=None, pred_file=None, train_file=None, baselines=True, gate_file=None,
             **model_kw) -> dict:
    gold = load_corpus(data_file)
    systems, first_pred, gate = {}, None, None
    if model_dir:
        tagger = load_tagger(model_dir, **model_kw)
        pred, stance, holders, by_holder = model_predictions(tagger, gold)
        systems["diplotag"] = score_system(gold, pred, stance, holder_on_gold=holders, stance_by_holder=by_holder)
        first_pred = pred
        if all("gate_score" in p for p in pred):
            gate, gated_pred = gate_results(gold, pred)
            systems["diplotag with the gate"] = score_system(gold, gated_pred)
            if gate_file:
                gate["labelled_texts"] = offtopic_rejection(tagger, gate_file)
    if pred_file:
        by_id = {r["id"]: r for r in load_corpus(pred_file, require_stance=False)}
        missing = [r["id"] for r in gold if r["id"] not in by_id]
        if missing:
            raise ValueError(f"{pred_file}: no prediction for {len(missing)} gold records, e.g. {missing[:3]}")
        pred = [by_id[r["id"]] for r in gold]
        changed = [r["id"] for r, p in zip(gold, pred) if r["text"] != p["text"]]
        if changed:
            raise ValueError(f"{pred_file}: the text of {len(changed)} records differs from the gold text, "
                             f"e.g. {changed[:3]}: offsets would not line up")
        systems["predictions"] = score_system(gold, pred)
        first_pred = first_pred or pred
    if baselines:
        if not train_file:
            raise ValueError("the baselines need --train FILE (the TF-IDF stance model is trained on it)")
        pred, stance = baseline_predictions(gold, load_corpus(train_file))
        systems["baseline (keywords + TF-IDF/LR)"] = score_system(gold, pred, stance)
        first_pred = first_pred or pred
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"data": str(data_file), "documents": len(gold), "gold_spans": sum(len(r["spans"]) for r in gold),
               "model": str(model_dir) if model_dir else None, "systems": systems}
    if model_dir and model_kw.get("holder_path"):
        results["holder_model"] = str(model_kw["holder_path"])
    if gate:
        results["gate"] = gate
    plot(results, out_dir)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    (out_dir / "report.md").write_text(markdown(results))
    (out_dir / "errors.tsv").write_text("\n".join(error_lines(gold, first_pred)) + "\n", encoding="utf-8")
    return results
