"""Inter-annotator agreement: a blind second annotation of a sample of the corpus, scored
against the corpus.

`export` writes the sampled documents as plain source files (header and text, no markup)
for a second annotator; the annotator adds `[[LABEL/stance: …]]` marks without changing a
character of the text; `score` compiles them and compares with the corpus.
"""
import json
import random
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from .build import CORPUS_DIR, SPLITS
from .markup import load_source_file
from .schema import load_corpus

SECOND_DIR = Path(__file__).resolve().parent / "agreement" / "second"


def sample_ids(n: int, seed: int = 13) -> list[str]:
    """A fixed random sample, stratified by split in proportion to its size."""
    rng = random.Random(seed)
    records = {s: load_corpus(CORPUS_DIR / f"{s}.jsonl") for s in SPLITS}
    total = sum(map(len, records.values()))
    ids = []
    for split, recs in records.items():
        k = round(n * len(recs) / total)
        ids += sorted(r["id"] for r in rng.sample(recs, k))
    return ids


def export_plain(ids, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    by_id = {r["id"]: r for s in SPLITS for r in load_corpus(CORPUS_DIR / f"{s}.jsonl")}
    for rid in ids:
        text = by_id[rid]["text"]
        crlf = "\r\n" in text
        header = f"id: {rid}\n" + ("newline: crlf\n" if crlf else "")
        (out_dir / f"{rid}.txt").write_text(header + "---\n" + text.replace("\r\n", "\n") + "\n", encoding="utf-8")


def _overlap(a, b):
    return a["start"] < b["end"] and b["start"] < a["end"]


def score(second_dir: Path = SECOND_DIR) -> tuple[dict, list[str]]:
    """Agreement of the second annotation with the corpus: span F1 (exact: same label and
    offsets; overlap: same label, overlapping), Cohen's kappa on stance over span pairs that
    match by overlap and label. Returns the figures and a list of disagreements."""
    gold = {r["id"]: r for s in SPLITS for r in load_corpus(CORPUS_DIR / f"{s}.jsonl")}
    exact = overlap_a = overlap_b = n_a = n_b = 0
    stance_a, stance_b, notes = [], [], []
    files = sorted(second_dir.glob("*.txt"))
    for path in files:
        second = load_source_file(path)
        first = gold[second["id"]]
        if second["text"] != first["text"]:
            raise ValueError(f"{path}: the annotated text differs from the corpus text of {second['id']}")
        a, b, text = first["spans"], second["spans"], first["text"]
        n_a, n_b = n_a + len(a), n_b + len(b)
        exact += sum(any(x["start"] == y["start"] and x["end"] == y["end"] and x["label"] == y["label"] for y in b)
                     for x in a)
        overlap_a += sum(any(_overlap(x, y) and x["label"] == y["label"] for y in b) for x in a)
        overlap_b += sum(any(_overlap(x, y) and x["label"] == y["label"] for y in a) for x in b)
        for x in a:
            match = next((y for y in b if _overlap(x, y) and x["label"] == y["label"]), None)
            if match:
                stance_a.append(x["stance"])
                stance_b.append(match["stance"])
                if match["stance"] != x["stance"]:
                    notes.append(f"{first['id']}\tSTANCE\t{x['label']}\tcorpus={x['stance']} second={match['stance']}\t"
                                 f"{text[x['start']:x['end']]}")
                elif (match["start"], match["end"]) != (x["start"], x["end"]):
                    notes.append(f"{first['id']}\tEXTENT\t{x['label']}\tcorpus={text[x['start']:x['end']]!r}\t"
                                 f"second={text[match['start']:match['end']]!r}")
            else:
                notes.append(f"{first['id']}\tONLY_CORPUS\t{x['label']}/{x['stance']}\t{text[x['start']:x['end']]}")
        for y in b:
            if not any(_overlap(x, y) and x["label"] == y["label"] for x in a):
                notes.append(f"{first['id']}\tONLY_SECOND\t{y['label']}/{y['stance']}\t{text[y['start']:y['end']]}")

    def f1(p_hits, r_hits):
        p, r = p_hits / max(1, n_b), r_hits / max(1, n_a)
        return 2 * p * r / (p + r) if p + r else 0.0

    figures = {"documents": len(files), "spans_corpus": n_a, "spans_second": n_b,
               "span_f1_exact": round(f1(exact, exact), 4), "span_f1_overlap": round(f1(overlap_b, overlap_a), 4),
               "stance_kappa": round(cohen_kappa_score(stance_a, stance_b), 4) if stance_a else 0.0,
               "stance_pairs": len(stance_a)}
    return figures, notes


def write_agreement(figures: dict, notes: list[str], extra_notes: str = "") -> None:
    (CORPUS_DIR / "agreement.json").write_text(json.dumps(dict(figures, notes=extra_notes), indent=1) + "\n")
    (SECOND_DIR.parent / "disagreements.tsv").write_text("\n".join(notes) + "\n", encoding="utf-8")
