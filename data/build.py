"""Compile the corpus sources (data/corpus/src/<split>/*.txt) into data/corpus/<split>.jsonl, and
the relevance gate's data into data/gate/<split>.jsonl: every corpus document labelled `relevant`
(it belongs to the beat, statement or not), every held-out beat article in business register
(data/beat/src/test/*.txt, compiled to data/beat/test.jsonl: shareholder letters, business TV,
shipping commentary, filings — annotated like the corpus, kept apart so that the register is
measured on articles by a writer who saw none of the train and dev ones, which joined the corpus)
also `relevant`, and every off-topic article the team wrote
(data/offtopic/src/<split>/*.txt: sport, business, weather, domestic politics, science, … in the
corpus's voices) labelled `offtopic`."""
import json
from pathlib import Path

from .markup import load_source_file
from .schema import load_corpus, parse_record

SPLITS = ("train", "dev", "test")
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
OFFTOPIC_DIR = Path(__file__).resolve().parent / "offtopic"
BEAT_DIR = Path(__file__).resolve().parent / "beat"
GATE_DIR = Path(__file__).resolve().parent / "gate"
RELEVANT, OFFTOPIC = "relevant", "offtopic"


def compile_split(src_dir: Path) -> list[dict]:
    """Records of one split, in file-name order, each validated like any corpus file."""
    records, errors = [], []
    for path in sorted(src_dir.glob("*.txt")):
        record = load_source_file(path)
        if record["id"] != path.stem:
            errors.append(f"{path}: id {record['id']!r} differs from the file name")
        _, problems = parse_record(record, require_holder=True)
        errors += [f"{path}: {p}" for p in problems]
        records.append(record)
    if errors:
        raise ValueError("\n".join(errors))
    return records


def render_jsonl(records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def gate_records(relevant: list[dict], offtopic: list[dict]) -> list[dict]:
    return ([{"id": r["id"], "text": r["text"], "label": RELEVANT} for r in relevant]
            + [{"id": r["id"], "text": r["text"], "label": OFFTOPIC} for r in offtopic])


def build_corpus(corpus_dir: Path = CORPUS_DIR, check: bool = False, offtopic_dir: Path = OFFTOPIC_DIR,
                 gate_dir: Path = GATE_DIR, beat_dir: Path = BEAT_DIR) -> dict[str, int]:
    """Write (or, with `check`, compare against) the compiled split files, and the gate's where
    off-topic sources exist. Returns the number of corpus documents per split; with `check`,
    raises if any compiled file is out of date."""
    counts, stale = {}, []

    def write(out: Path, rendered: str):
        if check:
            if not out.exists() or out.read_text(encoding="utf-8") != rendered:
                stale.append(str(out))
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(rendered, encoding="utf-8")

    folders = {"corpus": corpus_dir, "beat": beat_dir, "offtopic": offtopic_dir}
    compiled = {(name, split): compile_split(folder / "src" / split) for name, folder in folders.items()
                for split in SPLITS if name == "corpus" or (folder / "src" / split).is_dir()}
    # one id, one document, across every split and folder: an id is how errors, agreement rounds
    # and resumed jobs name a document
    where = {}
    for (name, split), records in compiled.items():
        for r in records:
            path = folders[name] / "src" / split / f"{r['id']}.txt"  # compile_split: id == file name
            if r["id"] in where:
                raise ValueError(f"{path}: id {r['id']!r} also in {where[r['id']]}")
            where[r["id"]] = path
    for split in SPLITS:
        records, beat = compiled["corpus", split], compiled.get(("beat", split), [])
        write(corpus_dir / f"{split}.jsonl", render_jsonl(records))
        counts[split] = len(records)
        if ("beat", split) in compiled:
            write(beat_dir / f"{split}.jsonl", render_jsonl(beat))
        elif (beat_dir / f"{split}.jsonl").exists():  # its sources are gone (moved into the corpus)
            if check:
                stale.append(f"{beat_dir / f'{split}.jsonl'} (no sources in {beat_dir / 'src' / split})")
            else:
                (beat_dir / f"{split}.jsonl").unlink()
        if ("offtopic", split) in compiled:
            offtopic = compiled["offtopic", split]
            if any(r["spans"] for r in offtopic):
                raise ValueError(f"{offtopic_dir / 'src' / split}: off-topic articles carry no statements")
            write(gate_dir / f"{split}.jsonl", render_jsonl(gate_records(records + beat, offtopic)))
    if stale:
        raise ValueError(f"out of date with their sources: {', '.join(stale)} (run `diplotag data build`)")
    return counts


def load_splits(corpus_dir: Path = CORPUS_DIR) -> dict[str, list[dict]]:
    """The compiled corpus: split name → its records."""
    return {s: load_corpus(corpus_dir / f"{s}.jsonl") for s in SPLITS}
