"""The `diplotag` command: one entry point, a verb per job."""
import argparse
import json
import sys
from pathlib import Path


def cmd_data_validate(args) -> int:
    from .data.schema import validate_jsonl

    total_errors = 0
    for path in args.files:
        records, errors = (validate_jsonl(path, labels=None, require_stance=False) if args.generic
                           else validate_jsonl(path))
        for e in errors:
            print(e)
        total_errors += len(errors)
        status = "ok" if not errors else f"{len(errors)} errors"
        print(f"{path}: {len(records)} valid records, {status}", file=sys.stderr)
    return 1 if total_errors else 0


def _read_records(path, fmt):
    from .data import convert
    from .data.schema import load_corpus

    if fmt == "jsonl":
        return load_corpus(path, labels=None, require_stance=False)
    if fmt == "conll":
        return convert.read_conll(path)
    if fmt == "label-studio":
        return convert.from_label_studio(convert.read_json_or_jsonl(path), str(path))
    return convert.from_doccano(convert.read_json_or_jsonl(path))


def _write_records(records, path, fmt) -> list[str]:
    from .data import convert
    from .data.schema import write_jsonl

    if fmt == "conll":
        return convert.write_conll(records, path)
    if fmt == "label-studio":
        Path(path).write_text(json.dumps(convert.to_label_studio(records), ensure_ascii=False, indent=1))
        return []
    write_jsonl(convert.to_doccano(records) if fmt == "doccano" else records, path)
    return []


FORMATS = ("jsonl", "conll", "label-studio", "doccano")


def _guess_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return {".conll": "conll", ".txt": "conll", ".json": "label-studio"}.get(suffix, "jsonl")


def cmd_data_convert(args) -> int:
    from .data.schema import parse_record

    records = _read_records(args.input, args.source or _guess_format(args.input))
    target = args.to or _guess_format(args.output)
    if target == "jsonl":  # whatever came in must be a valid corpus record on the way out
        errors = [f"{args.input}: {r.get('id')}: {p}" for r in records
                  for p in parse_record(r, labels=None, require_stance=False)[1]]
        if errors:
            print("\n".join(errors), file=sys.stderr)
            return 1
    for warning in _write_records(records, args.output, target):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.output}: {len(records)} records ({target})", file=sys.stderr)
    return 0


def cmd_data_build(args) -> int:
    from .data.build import build_corpus

    counts = build_corpus(check=args.check)
    print(("up to date: " if args.check else "built: ") + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_data_stats(args) -> int:
    from .data.stats import corpus_stats, render_data_card

    stats = corpus_stats()
    if args.json:
        print(json.dumps(stats, indent=1, ensure_ascii=False))
    else:
        card = render_data_card(stats)
        if args.write:
            Path(args.write).write_text(card, encoding="utf-8")
            print(f"wrote {args.write}", file=sys.stderr)
        else:
            print(card)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diplotag", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    data = verbs.add_parser("data", help="corpus files: validate, convert, build, stats")
    data_verbs = data.add_subparsers(dest="data_verb", required=True)
    p = data_verbs.add_parser("validate", help="check corpus JSONL files; list every error")
    p.add_argument("files", nargs="+")
    p.add_argument("--generic", action="store_true",
                   help="accept any label and no stance (e.g. NER corpora converted from CoNLL)")
    p.set_defaults(func=cmd_data_validate)
    p = data_verbs.add_parser("convert", help="convert between corpus JSONL, CoNLL, Label Studio, doccano")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--from", dest="source", choices=FORMATS, help="input format (default: from the suffix)")
    p.add_argument("--to", choices=FORMATS, help="output format (default: from the suffix)")
    p.set_defaults(func=cmd_data_convert)
    p = data_verbs.add_parser("build", help="compile data/corpus/src into data/corpus/<split>.jsonl")
    p.add_argument("--check", action="store_true", help="only check the compiled files are up to date")
    p.set_defaults(func=cmd_data_build)
    p = data_verbs.add_parser("stats", help="corpus statistics and the data card")
    p.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    p.add_argument("--write", metavar="FILE", help="write the data card (data/README.md) to FILE")
    p.set_defaults(func=cmd_data_stats)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        # Bad input is the user's to fix: say what and where, without a traceback.
        print(f"diplotag: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
