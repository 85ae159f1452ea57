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

from .build import CORPUS_DIR, load_splits
from .markup import load_source_file
from .spans import match_spans, overlaps, prf

SECOND_DIR = Path(__file__).resolve().parent / "agreement" / "second"


def sample_ids(n: int, seed: int = 13) -> list[str]:
    """A fixed random sample, stratified by split in proportion to its size."""
    rng = random.Random(seed)
    records = load_splits()
    total = sum(map(len, records.values()))
    ids = []
    for split, recs in records.items():
        k = round(n * len(recs) / total)
        ids += sorted(r["id"] for r in rng.sample(recs, k))
    return ids


def export_plain(ids, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    by_id = {r["id"]: r for recs in load_splits().values() for r in recs}
    for rid in ids:
        text = by_id[rid]["text"]
        crlf = "\r\n" in text
        header = f"id: {rid}\n" + ("newline: crlf\n" if crlf else "")
        (out_dir / f"{rid}.txt").write_text(header + "---\n" + text.replace("\r\n", "\n") + "\n", encoding="utf-8")


def _same_label(a, b):
    return overlaps(a, b) and a["label"] == b["label"]


def _exact(a, b):
    return (a["start"], a["end"], a["label"]) == (b["start"], b["end"], b["label"])


def score(second_dir: Path = SECOND_DIR) -> tuple[dict, list[str]]:
    """Agreement of the second annotation with the corpus: span F1 (exact: same label and
    offsets; overlap: same label, overlapping; spans paired one to one), Cohen's kappa on
    stance and holder accuracy over the pairs matched by overlap and label. `second_dir` may
    be a list of files (one round of the study). Returns the figures and the list of
    disagreements."""
    gold = {r["id"]: r for recs in load_splits().values() for r in recs}
    exact = overlap = n_a = n_b = 0
    stance_a, stance_b, holders, notes = [], [], [], []
    files = sorted(second_dir.glob("*.txt")) if isinstance(second_dir, Path) else sorted(map(Path, second_dir))
    for path in files:
        second = load_source_file(path)
        if second["id"] not in gold:
            raise ValueError(f"{path}: id {second['id']!r} is not in the corpus")
        first = gold[second["id"]]
        if second["text"] != first["text"]:
            raise ValueError(f"{path}: the annotated text differs from the corpus text of {second['id']}")
        a, b, text = first["spans"], second["spans"], first["text"]
        n_a, n_b = n_a + len(a), n_b + len(b)
        exact += sum(y is not None for _, y in match_spans(a, b, _exact)[0])
        pairs, only_second = match_spans(a, b, _same_label)
        overlap += sum(y is not None for _, y in pairs)
        for x, y in pairs:
            if y is None:
                notes.append(f"{first['id']}\tONLY_CORPUS\t{x['label']}/{x['stance']}\t{text[x['start']:x['end']]}")
                continue
            stance_a.append(x["stance"])
            stance_b.append(y["stance"])
            if "holder" in y:  # second annotations made before holders were annotated carry none
                holders.append(x.get("holder") == y["holder"])
                if x.get("holder") != y["holder"]:
                    notes.append(f"{first['id']}\tHOLDER\t{x['label']}\tcorpus={x.get('holder')} second={y['holder']}\t"
                                 f"{text[x['start']:x['end']]}")
            if y["stance"] != x["stance"]:
                notes.append(f"{first['id']}\tSTANCE\t{x['label']}\tcorpus={x['stance']} second={y['stance']}\t"
                             f"{text[x['start']:x['end']]}")
            elif (y["start"], y["end"]) != (x["start"], x["end"]):
                notes.append(f"{first['id']}\tEXTENT\t{x['label']}\tcorpus={text[x['start']:x['end']]!r}\t"
                             f"second={text[y['start']:y['end']]!r}")
        notes += [f"{first['id']}\tONLY_SECOND\t{y['label']}/{y['stance']}\t{text[y['start']:y['end']]}"
                  for y in only_second]
    kappa = cohen_kappa_score(stance_a, stance_b) if len(set(stance_a + stance_b)) > 1 else None
    figures = {"documents": len(files), "spans_corpus": n_a, "spans_second": n_b,
               "span_f1_exact": prf(exact, n_b, n_a)["f1"], "span_f1_overlap": prf(overlap, n_b, n_a)["f1"],
               "stance_kappa": round(kappa, 4) if kappa is not None else None, "stance_pairs": len(stance_a),
               "holder_accuracy": round(sum(holders) / len(holders), 4) if holders else None,
               "holder_pairs": len(holders)}
    return figures, notes


def score_rounds() -> tuple[dict, list[str]]:
    """Every round of the study (a `plain*` folder of the documents it sent out, whose second
    annotations are in `SECOND_DIR`): round name → its figures, and all rounds' disagreements."""
    rounds, notes = {}, []
    for plain in sorted(SECOND_DIR.parent.glob("plain*")):
        rounds[plain.name], disagreements = score([SECOND_DIR / p.name for p in plain.glob("*.txt")])
        notes += disagreements
    return rounds, notes


def write_agreement(rounds: dict, notes: list[str], extra_notes: str = "") -> None:
    """`rounds`: round name (its folder of plain documents) → its figures."""
    (CORPUS_DIR / "agreement.json").write_text(json.dumps({"rounds": rounds, "notes": extra_notes}, indent=1) + "\n")
    (SECOND_DIR.parent / "disagreements.tsv").write_text("\n".join(notes) + "\n", encoding="utf-8")
