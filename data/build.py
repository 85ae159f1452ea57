"""Compile the corpus sources (data/corpus/src/<split>/*.txt) into data/corpus/<split>.jsonl."""
import json
from pathlib import Path

from .markup import load_source_file
from .schema import load_corpus, parse_record

SPLITS = ("train", "dev", "test")
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


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


def build_corpus(corpus_dir: Path = CORPUS_DIR, check: bool = False) -> dict[str, int]:
    """Write (or, with `check`, compare against) the compiled split files. Returns the number
    of documents per split; with `check`, raises if any compiled file is out of date."""
    counts, stale = {}, []
    for split in SPLITS:
        records = compile_split(corpus_dir / "src" / split)
        out, rendered = corpus_dir / f"{split}.jsonl", render_jsonl(records)
        if check:
            if not out.exists() or out.read_text(encoding="utf-8") != rendered:
                stale.append(str(out))
        else:
            out.write_text(rendered, encoding="utf-8")
        counts[split] = len(records)
    if stale:
        raise ValueError(f"out of date with their sources: {', '.join(stale)} (run `diplotag data build`)")
    return counts


def load_splits(corpus_dir: Path = CORPUS_DIR) -> dict[str, list[dict]]:
    """The compiled corpus: split name → its records."""
    return {s: load_corpus(corpus_dir / f"{s}.jsonl") for s in SPLITS}
