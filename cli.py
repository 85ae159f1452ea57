"""The `diplotag` command: one entry point, a verb per job."""
import argparse
import json
import os
import sys
import warnings
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


FORMATS = ("jsonl", "conll", "label-studio", "doccano")


def _guess_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return {".conll": "conll", ".txt": "conll", ".json": "label-studio"}.get(suffix, "jsonl")


def cmd_data_convert(args) -> int:
    from .data.convert import read_records, write_records
    from .data.schema import parse_record

    records = read_records(args.input, args.source or _guess_format(args.input))
    target = args.to or _guess_format(args.output)
    if target == "jsonl":  # whatever came in must be a valid corpus record on the way out
        errors = [f"{args.input}: {r.get('id')}: {p}" for r in records
                  for p in parse_record(r, labels=None, require_stance=False)[1]]
        if errors:
            print("\n".join(errors), file=sys.stderr)
            return 1
    for warning in write_records(records, args.output, target):
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
    from .model.base import default_token_counter

    stats = corpus_stats(count_tokens=default_token_counter())
    card = render_data_card(stats)
    if args.write:
        Path(args.write).write_text(card, encoding="utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    print(json.dumps(stats, indent=1, ensure_ascii=False) if args.json else "" if args.write else card)
    return 0


SHIPPED_AS = {"classifier": "gate"}  # a document classifier ships as the relevance gate of `tag --gate`


def cmd_train(args) -> int:
    from .train.config import load_config

    if args.what == "all" and args.config:
        raise ValueError("train all reads configs/{tagger,stance,holder,gate}.yaml; --config is for one model")
    jobs = {"all": ["configs/tagger.yaml", "configs/stance.yaml", "configs/holder.yaml", "configs/gate.yaml"],
            "classifier": [args.config or "configs/gate.yaml"]}.get(args.what, [args.config or f"configs/{args.what}.yaml"])
    from .train.common import check_before_training

    configs = [load_config(path, args.set) for path in jobs]  # every config checked before any work,
    for cfg in configs:                                        # the data and the base model's limits too
        check_before_training(cfg)
    for cfg in configs:
        if cfg.task == "tagger":
            from .train.tagger import train_tagger as train
        elif cfg.task == "stance":
            from .train.stance import train_stance as train
        elif cfg.task == "classifier":
            from .train.classifier import train_classifier as train
        else:
            from .train.holder import train_holder as train
        dev = train(cfg, resume=args.resume)
        print(f"{cfg.task}: {cfg.output_dir}: " + ", ".join(f"{k}={v:.4f}" for k, v in dev.items()))
    main_process = int(os.environ.get("RANK", "0")) == 0  # one process calibrates and copies, under accelerate too
    neural = [cfg for cfg in configs if cfg.task in ("tagger", "stance")]
    if neural and main_process:
        from .train.calibrate import calibrate

        root = neural[0].output_dir.parent  # runs/: tagger/ and stance/ side by side
        if (root / "tagger").is_dir():
            fitted = calibrate(root, neural[0].dev_file)
            print("calibrated on dev: " + ", ".join(f"{k}={v}" for k, v in fitted.items()), file=sys.stderr)
    if args.ship and main_process:
        from .model.base import DEFAULT_MODELS
        from .train.common import ship_as_default

        for cfg in configs:
            dest = DEFAULT_MODELS / SHIPPED_AS.get(cfg.task, cfg.task)
            ship_as_default(cfg.output_dir, dest)
            print(f"shipped {cfg.output_dir} as {dest}", file=sys.stderr)
    return 0


def tag_device(requested: str, backend: str, state=None) -> str:
    """The device to tag on. Under `accelerate launch` each process has a device of its own (the
    accelerate state's, e.g. cuda:3): "auto" or "cuda" would put every process on GPU 0."""
    if state is None or backend != "torch" or requested not in ("auto", "cuda"):
        return requested
    return str(state.device)


def cmd_tag(args) -> int:
    import tempfile

    from .model.batch import (ShardsFailed, add_counts, merge_shards, print_table, read_inputs, render_html,
                              run_parquet_job, run_tag_job, shard_heartbeat, status_path, summary, wait_for_shards)
    from .model.tagger import Tagger

    if args.format is None:  # from the output's suffix: -o tagged.parquet writes Parquet
        parquet = args.output and Path(args.output).suffix.lower() in (".parquet", ".pq")
        args.format = "parquet" if parquet else "jsonl"
    if args.format not in ("jsonl", "parquet") and args.resume:
        raise ValueError("--resume works with --format jsonl or parquet")
    if args.format == "html" and not args.output:
        raise ValueError("--format html needs -o PAGE.html")
    if args.format == "parquet" and (not args.output or args.output == "-"):
        raise ValueError("--format parquet needs -o OUT.parquet")
    rank, world, state = 0, 1, None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under `accelerate launch` or torchrun: one shard per process
        import torch
        from accelerate import PartialState

        # Made before the model is placed, since it sets this process's device. On CPU it must be
        # told so: otherwise accelerate leaves CPU processes unaware of each other.
        on_cpu = args.backend != "torch" or args.device == "cpu" or not torch.accelerator.is_available()
        state = PartialState(cpu=on_cpu)
        rank, world = state.process_index, state.num_processes
        if world == 1:  # each process would tag every record
            raise ValueError(f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but accelerate sees one process: "
                             "start the job with accelerate launch or torchrun")
    tmp = None
    if args.format in ("jsonl", "parquet"):
        out = args.output or "-"
    else:
        tmp = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)
        out = tmp.name
    if world > 1 and (args.format != "jsonl" or out == "-" or "-" in args.inputs):
        raise ValueError("a sharded run reads files (not -) and writes --format jsonl to -o OUT.jsonl")
    target = Path(f"{out}.shard{rank}of{world}") if world > 1 else out
    if world > 1:
        finish = shard_heartbeat(target)
        state.wait_for_everyone()  # every status file is fresh (none left from an earlier run) before any is read
    try:
        tagger = Tagger.from_pretrained(args.model, backend=args.backend,
                                        device=tag_device(args.device, args.backend, state),
                                        batch_size=args.batch_size, stance_batch_size=args.stance_batch_size,
                                        max_length=args.max_length, stride=args.stride, min_score=args.min_score,
                                        precision=args.precision, gate=args.gate, gate_threshold=args.gate_threshold,
                                        holder_path=args.holder)
        inputs = read_inputs(args.inputs, text_column=args.text_column, id_column=args.id_column)
        if args.format == "parquet":
            counts = run_parquet_job(tagger, inputs, out, rows=args.parquet_rows, batch_docs=args.batch_docs,
                                     strict=args.strict, resume=args.resume, progress=not args.quiet)
        else:
            counts = run_tag_job(tagger, inputs, target, batch_docs=args.batch_docs, strict=args.strict,
                                 resume=args.resume, progress=not args.quiet, rank=rank, world=world)
    except BaseException as err:
        if world > 1:  # tell the merging process now, rather than let it wait for a heartbeat to stop
            finish(error=f"{type(err).__name__}: {err}")
        raise
    print(summary(counts, f"[{rank}/{world}] " if world > 1 else ""), file=sys.stderr)
    if world > 1:
        finish(counts=counts)
        if rank != 0:
            return 1 if counts["failed"] else 0
        shards = [Path(f"{out}.shard{r}of{world}") for r in range(world)]
        try:
            counts = add_counts(wait_for_shards(shards, timeout=args.shard_timeout))
        except ShardsFailed as err:
            print(f"diplotag: error: {err}; the shards are kept: rerun with --resume to carry on", file=sys.stderr)
            return 1
        merge_shards(shards, Path(out))
        for s in shards:
            s.unlink()
            status_path(s).unlink()
        print(summary(counts, f"{out}: "), file=sys.stderr)
    if tmp is not None:
        records = [json.loads(line) for line in open(out, encoding="utf-8")]
        os.unlink(out)
        if args.format == "html":
            Path(args.output).write_text(render_html(records), encoding="utf-8")
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            print_table(records)
    return 1 if counts["failed"] else 0  # so that schedulers notice; bad input alone is reported, not fatal


def cmd_data_agreement(args) -> int:
    from .data import agreement

    if args.export:
        ids = agreement.sample_ids(args.export)
        agreement.export_plain(ids, Path(args.plain_dir))
        print(f"wrote {len(ids)} plain documents to {args.plain_dir}", file=sys.stderr)
        return 0
    rounds, notes = agreement.score_rounds()
    agreement.write_agreement(rounds, notes, Path(args.notes).read_text().strip() if args.notes else "")
    print(json.dumps(rounds, indent=1))
    return 0


def cmd_eval(args) -> int:
    if args.readme:
        from .eval.readme import update_readme

        update_readme()
        print("README.md results regenerated from eval/results/", file=sys.stderr)
        return 0
    from .eval.report import run_eval

    if not args.data or not (args.model or args.pred or args.baselines):
        raise ValueError("eval needs --data FILE and --model DIR and/or --pred FILE (or --readme)")
    if args.holder and not args.model:
        raise ValueError("--holder replaces a model's holder/: it needs --model")
    results = run_eval(args.data, args.out, model_dir=args.model, pred_file=args.pred, train_file=args.train,
                       baselines=args.baselines, backend=args.backend, precision=args.precision, holder_path=args.holder,
                       gate_file=args.gate_data if Path(args.gate_data).exists() else None)
    for name, r in results["systems"].items():
        micro = r["seqeval"]["micro avg"]
        st = r.get("stance_on_gold_spans", {})
        print(f"{name}: span F1 {micro['f1-score']:.4f} (P {micro['precision']:.4f} R {micro['recall']:.4f}); "
              f"stance macro F1 on gold spans {st.get('macro_f1', float('nan')):.4f}; "
              f"end-to-end F1 {r['end_to_end']['strict']['f1']:.4f} strict, {r['end_to_end']['overlap']['f1']:.4f} overlap")
        if "holder_on_gold_spans" in r:
            h = r["holder_on_gold_spans"]
            gold_stance = f", {h['accuracy_with_gold_stance']:.4f} given the gold stance" if "accuracy_with_gold_stance" in h else ""
            print(f"{name}: holder accuracy on gold statements {h['accuracy']:.4f}{gold_stance} (baseline {h['baseline_accuracy']:.4f}); "
                  f"end to end with holder F1 {r['end_to_end_holder']['f1']:.4f}")
        if "stance_by_holder_input" in r:
            print(f"{name}: stance macro F1 on gold spans, the holder given as " + ", ".join(
                f"{given} {st['macro_f1']:.4f}" for given, st in r["stance_by_holder_input"].items()))
    if "gate" in results:
        g = results["gate"]
        skipped = g.get("labelled_texts", {}).get("offtopic_rejected_share")
        print(f"gate: {g['statement_documents_passed']}/{g['statement_documents']} statement-bearing documents passed"
              + (f" (recall {g['recall']:.4f})" if g["recall"] is not None else "")
              + (f"; off-topic articles skipped: {skipped:.4f}" if skipped is not None else ""))
    print(f"wrote {args.out}/results.json, report.md, errors.tsv and plots", file=sys.stderr)
    return 0


def cmd_bench_re3d(args) -> int:
    from .eval.re3d import run_re3d

    command = "diplotag bench re3d " + " ".join(
        [f"--seeds {' '.join(map(str, args.seeds))}"] + [f"--set {x}" for x in args.set])
    res = run_re3d(args.config, args.seeds, args.set, args.out, command)
    print(f"re3d test macro F1: {100 * res['mean']:.2f} ± {100 * res['stdev']:.2f} over seeds {args.seeds} "
          f"(BERT-base uncased in the paper: {res['paper']['BERT-base uncased']})")
    return 0


def cmd_bench_speed(args) -> int:
    from .eval.bench import run_speed_bench

    command = (f"diplotag bench speed --docs {args.docs} --threads {args.threads} --backend {args.backend} "
               f"--precision {args.precision} --repeats {args.repeats}" + (f" --rounds {args.rounds}" if args.rounds > 1 else "")
               + (f" --mix {args.mix}" if args.mix else "")
               + (f" --model {args.model}" if args.model != "default" else ""))
    args.out = args.out or f"eval/results/bench{'-mix' if args.mix else ''}.json"
    r = run_speed_bench(args.model, args.docs, threads=args.threads, backend=args.backend, out_json=args.out,
                        command=command, repeats=args.repeats, sizes=(3, 30, args.docs), precision=args.precision,
                        mix=args.mix, rounds=args.rounds)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{r['workload']['documents']} articles, {r['workload']['tokens']} tokens, "
                        f"{args.threads} threads, backend {args.backend}")
    for col in ("system", "seconds", "docs/s", "tokens/s", "peak RSS MB"):
        table.add_column(col, justify="right")
    names = {"diplotag": f"diplotag ({args.precision}{', gate' if args.mix else ''})",
             "diplotag_fp32": f"diplotag (fp32{', gate' if args.mix else ''})", "pipeline": "pipeline (fp32)"}
    for key, name in names.items():
        if key in r:
            x = r[key]
            table.add_row(name, f"{x['seconds']:.1f}", f"{x['docs_per_s']:.2f}", f"{x['tokens_per_s']:.0f}",
                          str(x["peak_rss_mb"]))
    console = Console()
    console.print(table)
    console.print(f"pipeline at its best batch size, {r['pipeline']['batch_size']} "
                  f"(seconds by batch size: {r['pipeline']['seconds_by_batch_size']}); {r['timing']}")
    console.print(f"speed-up {r['speedup']}×, statements agreeing {100 * r['agreement']:.1f}%; "
                  f"{r['achieved_gflops']} GFLOP/s of a {r['matmul_peak_gflops']} GFLOP/s matmul peak "
                  f"(MFU {100 * r['model_flops_utilisation']:.1f}%)")
    if "diplotag_fp32" in r:
        console.print(f"fp32: speed-up {r['diplotag_fp32']['speedup']}×, statements agreeing "
                      f"{100 * r['diplotag_fp32']['agreement']:.1f}%")
    if "gate" in r:
        g = r["gate"]
        console.print(f"gate: {g['statement_documents_passed']}/{g['statement_documents']} statement-bearing documents "
                      f"passed, {g['offtopic_gated']}/{g['offtopic_documents']} off-topic ones skipped; statements "
                      f"agreeing on the documents passed {100 * g['agreement_on_passed']:.1f}%")
    for s in r["scaling"]:
        console.print(f"  {s['documents']:>5} docs, {s['tokens']:>7} tokens: {s['seconds_per_1k_tokens']:.4f} s per 1k tokens")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_bench_ablations(args) -> int:
    from .eval.ablations import run_ablations

    for r in run_ablations(args.config, args.only, args.retrain, args.out)["runs"]:
        print(f"{r['name']}: dev F1 {r['dev_metrics']['eval_f1']:.4f}")
    return 0


def cmd_report(args) -> int:
    from .eval.collection import collection_report

    r = collection_report(args.inputs, args.output, examples=args.examples, top=args.top)
    docs = r["documents"]
    print(f"{args.output}: {docs.get('documents', 0)} documents, {docs.get('statements', 0)} statements; "
          f"{len(r['files'])} files and {r['pages']} article pages; open {args.output}/index.html", file=sys.stderr)
    return 0


HOLDER_HELP = ("a holder model folder (a `diplotag train holder` run) in place of --model's holder/: "
               "e.g. the accurate preset's, runs/base/holder, beside --model default")


def build_parser() -> argparse.ArgumentParser:
    from .model.gate import GATE_THRESHOLD  # numpy only: the parser stays quick to build

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
    p = data_verbs.add_parser("agreement", help="blind second annotation: export a sample, or score it")
    p.add_argument("--export", type=int, metavar="N", help="export a fixed sample of N documents as plain text")
    p.add_argument("--plain-dir", default="data/agreement/plain")
    p.add_argument("--notes", default="data/agreement/NOTES.md",
                   help="file saying how disagreements were resolved (goes into the data card)")
    p.set_defaults(func=cmd_data_agreement)

    p = verbs.add_parser("tag", help="find statements and their stance in documents")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".txt files, folders of them, .jsonl, .csv, .tsv or .parquet files, folders written by "
                        "datasets' save_to_disk, or -")
    p.add_argument("-o", "--output", help="output file (JSONL, Parquet, or the page for --format html); default stdout")
    p.add_argument("--format", choices=["jsonl", "parquet", "html", "table"],
                   help="default: parquet when -o ends in .parquet, else jsonl")
    p.add_argument("--parquet-rows", choices=["documents", "statements"], default="documents",
                   help="Parquet output: one row per document (statements nested in `spans`) or one per statement")
    p.add_argument("--text-column", default="text", help="CSV, TSV, Parquet and datasets inputs: the text's column")
    p.add_argument("--id-column", default="id",
                   help="CSV, TSV, Parquet and datasets inputs: the id's column (where missing: the row number, from 1); "
                        "other columns go to meta")
    p.add_argument("--model", default="default", help="'default' (shipped), or a folder with tagger/ and stance/")
    p.add_argument("--holder", metavar="FOLDER", help=HOLDER_HELP)
    p.add_argument("--backend", choices=["torch", "int8"], default="torch")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: about twice as fast on a CPU with AVX-512 BF16/AMX or a GPU, a few statements in a "
                        "hundred decided differently; fp32 (default) reproduces the trained model exactly")
    p.add_argument("--gate", action="store_true",
                   help="run the relevance gate first: documents it calls off-topic are not tagged (their records say "
                        "\"gated\": true)")
    p.add_argument("--gate-threshold", type=float, default=GATE_THRESHOLD,
                   help=f"the gate's off-topic probability from which a document is skipped (default {GATE_THRESHOLD}, as "
                        "eval scores it); where the gate has a word prefilter, its own score decides wherever it is sure "
                        "(off-topic probability 0.8 or more, or 0.02 or less, for the shipped gate), the mean of its and "
                        "the classifier's elsewhere")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … (default: cuda when there is one)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass of the tagger")
    p.add_argument("--stance-batch-size", type=int, default=32, help="statements per forward pass of the stance model")
    p.add_argument("--min-score", type=float, default=0.0,
                   help="drop statements whose calibrated score (the dev-fitted chance that it is exactly right) is lower")
    p.add_argument("--batch-docs", type=int, default=64, help="documents read, tagged and written per batch")
    p.add_argument("--max-length", type=int, help="tokens per window (default: as the tagger was trained)")
    p.add_argument("--stride", type=int, help="tokens of overlap between windows (default: as in training)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad record instead of reporting it")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run into the same -o file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shard-timeout", type=float, default=60, metavar="SECONDS",
                   help="a sharded run stops when a process shows no sign of life for this long")
    p.set_defaults(func=cmd_tag)

    p = verbs.add_parser("eval", help="score a model or predictions (and the baselines) against gold records")
    p.add_argument("--data", help="gold corpus JSONL (e.g. data/corpus/test.jsonl)")
    p.add_argument("--model", help="'default' or a model folder (tagger/ and stance/)")
    p.add_argument("--holder", metavar="FOLDER", help=HOLDER_HELP)
    p.add_argument("--pred", help="a predictions JSONL (e.g. from diplotag tag) to score instead of / beside a model")
    p.add_argument("--train", default="data/corpus/train.jsonl", help="train split, for the TF-IDF stance baseline")
    p.add_argument("--no-baselines", dest="baselines", action="store_false")
    p.add_argument("--backend", choices=["torch", "int8"], default="torch")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--gate-data", default="data/gate/test.jsonl",
                   help="labelled texts (relevant / offtopic) on which the model's gate, if it has one, is also scored")
    p.add_argument("--out", default="runs/eval", help="folder for results.json, report.md, errors.tsv, plots")
    p.add_argument("--readme", action="store_true", help="regenerate the README's results table from eval/results/")
    p.set_defaults(func=cmd_eval)

    bench = verbs.add_parser("bench", help="benchmarks: re3d against a published table; inference speed")
    bench_verbs = bench.add_subparsers(dest="bench_verb", required=True)
    p = bench_verbs.add_parser("re3d", help="train and score the generic tagger on re3d over several seeds")
    p.add_argument("--config", default="configs/re3d.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="eval/results/re3d.json")
    p.set_defaults(func=cmd_bench_re3d)
    p = bench_verbs.add_parser("speed", help="batch inference against transformers' pipeline on a fixed workload")
    p.add_argument("--model", default="default")
    p.add_argument("--docs", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each system (and pipeline batch size); the best counts")
    p.add_argument("--rounds", type=int, default=1,
                   help="time both systems this many times in turn, each in fresh processes; the round with the median "
                        "speed-up gives the figures, and every round's speed-up is reported")
    p.add_argument("--backend", choices=["torch", "int8"], default="torch")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="diplotag's precision (bf16 is also timed in fp32); the pipeline runs in fp32")
    p.add_argument("--mix", type=float, metavar="SHARE",
                   help="a news stream: this share of test documents among held-out off-topic articles; "
                        "diplotag runs its relevance gate (--out defaults to eval/results/bench-mix.json)")
    p.add_argument("--out", help="default: eval/results/bench.json")
    p.set_defaults(func=cmd_bench_speed)
    p = bench_verbs.add_parser("ablations", help="tagger dev F1 per epoch: the shipped form against its variants (head rate, LoRA, class weights)")
    p.add_argument("--config", default="configs/tagger.yaml")
    p.add_argument("--only", type=int, nargs="*", help="run only these variants (0, 1, 2)")
    p.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    p.add_argument("--out", default="eval/results/ablations.json")
    p.set_defaults(func=cmd_bench_ablations)

    p = verbs.add_parser("report", help="what a tagged collection says: stance by holder × label, by month; "
                                         "CSV, Markdown, plots and an HTML page")
    p.add_argument("inputs", nargs="+", metavar="TAGGED", help="JSONL files written by diplotag tag, or -")
    p.add_argument("-o", "--output", default="report", help="folder for the report (default: report)")
    p.add_argument("--examples", type=int, default=20, help="statements linked per holder × label cell")
    p.add_argument("--top", type=int, default=10, help="holders in the balance table and the holder plots")
    p.set_defaults(func=cmd_report)

    p = verbs.add_parser("train", help="fine-tune the tagger, the stance model, the holder ranker, a document "
                                       "classifier (the relevance gate), or all of them")
    p.add_argument("what", choices=["tagger", "stance", "holder", "classifier", "all"])
    p.add_argument("--config", help="YAML config (default: configs/<what>.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set epochs=3 --set lora.r=8 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    p.add_argument("--ship", action="store_true",
                   help="copy the trained models to model/default/ (what `make models` does); a classifier ships as the gate")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and weight-loading bars are noise to users
    hf_logging.disable_progress_bar()
    # peft asks a deprecated transformers property once per training run; nothing for the user to do
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        # Bad input is the user's to fix: say what and where, without a traceback.
        print(f"diplotag: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
