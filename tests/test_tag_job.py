"""The batch job with tiny random models: one output per input, in order; errors reported in
place; resume after kill -9 and only onto the same inputs; sharding over two processes keeps
input order, each process on its own device; a failed job, or a failed process, says so."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diplotag.cli import main
from diplotag.model.batch import complete_records, render_html
from diplotag.model.tagger import Tagger

from conftest import FIXTURES


def write_inputs(path, n, bad_every=0):
    text = (FIXTURES / "seed_article.txt").read_text(encoding="utf-8")
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if bad_every and i % bad_every == 3:
                f.write("{broken json\n")
            else:
                f.write(json.dumps({"id": f"doc-{i}", "text": text[: 100 + (37 * i) % 900], "meta": {"n": i}}) + "\n")


def read_jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_one_output_per_input_in_order_with_errors_in_place(tmp_path, tiny_models, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        json.dumps({"id": "ok-1", "text": "Japan will deliver two radars to Manila.", "meta": {"k": 1}}),
        "not json at all",
        json.dumps({"id": "no-text"}),
        json.dumps({"id": "not-string", "text": ["a"]}),
        json.dumps({"id": "empty", "text": "   "}),
        json.dumps(["a list"]),
        json.dumps({"id": "ok-2", "text": "Beijing slammed the arms sale."}),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["tag", str(src), str(FIXTURES / "seed_article.txt"), "-o", str(out), "--model", str(tiny_models),
                 "-q", "--batch-docs", "3"]) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["ok-1", f"{src}:2", "no-text", "not-string", "empty", f"{src}:6", "ok-2",
                                       "seed_article.txt"]
    errors = {r["id"]: r["error"] for r in rows if "error" in r}
    assert errors == {f"{src}:2": "not JSON: Expecting value (column 1)", "no-text": "no 'text' field",
                      "not-string": "'text' is list, not a string", "empty": "'text' is empty",
                      f"{src}:6": "not a JSON object but list"}
    assert rows[0]["meta"] == {"k": 1}
    for r in rows:
        if "error" in r:
            continue
        assert r["spans"], "the biased tiny model finds spans"
        for s in r["spans"]:
            assert r["text"][s["start"]:s["end"]] == s["text"]
            assert s["stance"] in ("support", "oppose", "neutral") and 0 <= s["score"] <= 1
            assert abs(sum(s["stance_scores"].values()) - 1) < 1e-3


def test_strict_stops_at_the_first_bad_record(tmp_path, tiny_models, capsys):
    src = tmp_path / "in.jsonl"
    write_inputs(src, 10, bad_every=5)
    assert main(["tag", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_models), "-q", "--strict"]) == 2
    assert f"{src}:4" in capsys.readouterr().err


def test_python_api_accepts_texts_and_records(tiny_models):
    tagger = Tagger.from_pretrained(tiny_models, device="cpu")
    out = tagger.tag(["Japan will sell frigates.", {"id": "x", "text": "A port call.", "meta": {"a": 1}}])
    assert [r["id"] for r in out] == ["0", "x"] and out[1]["meta"] == {"a": 1}


def _cli(*args):
    return [sys.executable, "-m", "diplotag.cli", *args]


def test_int8_backend_stays_close_to_torch(tiny_models):
    want = Tagger.from_pretrained(tiny_models, device="cpu")
    got = Tagger.from_pretrained(tiny_models, backend="int8", device="cpu")
    rows = [[101, 2023, 2003, 1037, 3231, 102]]
    p, q = want._run(want.model, rows, 0)[0], got._run(got.model, rows, 0)[0]
    assert type(got.model.bert.encoder.layer[0].attention.self.query).__module__.startswith("torch.ao")
    assert type(got.model.classifier) is type(want.model.classifier)  # the head stays in float
    assert type(got.model.bert.encoder.layer[0].output.dense) is torch.nn.Linear
    assert abs(p - q).max() < 0.05


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path, tiny_models):
    src, out, ref = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "ref.jsonl"
    write_inputs(src, 300, bad_every=50)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = [str(src), "--model", str(tiny_models), "-q", "--batch-docs", "2", "--max-length", "64", "--stride", "16"]
    subprocess.run(_cli("tag", *args, "-o", str(ref)), check=True, env=env)

    proc = subprocess.Popen(_cli("tag", *args, "-o", str(out)), env=env)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 20):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = out.read_bytes().count(b"\n")
    assert 0 < written < 300, "the run was killed part-way"
    with open(out, "a") as f:  # a record torn by the crash
        f.write('{"id": "doc-9999", "te')
    subprocess.run(_cli("tag", *args, "-o", str(out), "--resume"), check=True, env=env)
    assert out.read_text() == ref.read_text()
    assert complete_records(out) == 300


def test_two_process_sharded_run_keeps_input_order(tmp_path, tiny_models):
    src, out, ref = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "ref.jsonl"
    write_inputs(src, 41, bad_every=10)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = [str(src), "--model", str(tiny_models), "-q", "--batch-docs", "4"]
    subprocess.run(_cli("tag", *args, "-o", str(ref)), check=True, env=env)
    # two CPU processes as torchrun starts them (accelerate launch does the same on GPUs)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "-m", "diplotag.cli", "tag", *args, "-o", str(out)], check=True, env=env,
                         capture_output=True, text=True)
    assert read_jsonl(out) == read_jsonl(ref)
    assert not list(tmp_path.glob("out.jsonl.shard*"))
    # each process tagged its own half (not, unaware of the other, all of it)
    assert "[0/2] 21 records" in run.stderr and "[1/2] 20 records" in run.stderr
    assert f"{out}: 41 records: 37 tagged, 4 bad input, 0 failed" in run.stderr


def test_html_page_highlights_each_statement(tiny_models):
    records = Tagger.from_pretrained(tiny_models, device="cpu").tag(["Japan will deliver <two> radars & boats."])
    page = render_html(records + [{"id": "bad", "error": "no 'text' field"}])
    assert page.startswith("<!DOCTYPE html>") and page.count("<mark") == len(records[0]["spans"]) + 3  # + legend
    assert "<two>" not in page and "&lt;" in page and "&amp;" in page and "no &#x27;text&#x27; field" in page


CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
                 if os.path.exists(p)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium)")
def test_html_page_renders_in_headless_chromium(tmp_path, tiny_models):
    from PIL import Image, ImageStat

    records = Tagger.from_pretrained(tiny_models, device="cpu").tag([(FIXTURES / "seed_article.txt").read_text()])
    page = tmp_path / "page.html"
    page.write_text(render_html(records), encoding="utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,800",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    assert (0x7a, 0xec, 0xec) in colours or (0xfe, 0xca, 0x74) in colours or (0xff, 0x95, 0x61) in colours
    assert max(ImageStat.Stat(image).stddev) > 10  # not a blank page


# ---- issue 15: devices, failures, resume checks, dead processes, quiet and truthful output ----


class FakeState:
    """accelerate's PartialState as the second of two processes on a GPU machine sees it."""
    process_index, num_processes, device = 1, 2, torch.device("cuda", 1)

    def __init__(self, cpu=False):
        assert not cpu

    def wait_for_everyone(self):
        pass


def test_sharded_tagging_puts_each_process_on_its_own_device(tmp_path, monkeypatch):
    import accelerate

    from diplotag.cli import tag_device

    src = tmp_path / "in.jsonl"
    write_inputs(src, 4)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(accelerate, "PartialState", FakeState)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    asked = {}

    def from_pretrained(path, **kw):  # stands in for the model load: note the device, go no further
        asked.update(kw)
        raise ValueError("no model in this test")

    monkeypatch.setattr(Tagger, "from_pretrained", from_pretrained)
    assert main(["tag", str(src), "-o", str(tmp_path / "out.jsonl"), "-q"]) == 2
    assert asked["device"] == "cuda:1"
    state = FakeState()
    assert tag_device("cuda", "torch", state) == "cuda:1"
    assert tag_device("cuda:0", "torch", state) == "cuda:0" and tag_device("cpu", "torch", state) == "cpu"
    assert tag_device("auto", "int8", state) == "auto"  # int8 runs on the CPU
    assert tag_device("auto", "torch", None) == "auto"


def test_a_job_with_failed_records_says_so_and_exits_non_zero(tmp_path, tiny_models, monkeypatch, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join([
        json.dumps({"id": "ok", "text": "Japan will deliver two radars to Manila."}),
        json.dumps({"id": "boom", "text": "This one breaks the device."}),
        json.dumps({"id": "no-text"}),
    ]) + "\n")
    real_tag = Tagger.tag

    def tag(self, items):
        if any("breaks" in r["text"] for r in items):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_tag(self, items)

    monkeypatch.setattr(Tagger, "tag", tag)
    assert main(["tag", str(src), "-o", str(out), "--model", str(tiny_models), "-q"]) == 1
    err = capsys.readouterr().err
    assert "3 records: 1 tagged, 1 bad input, 1 failed" in err and "boom: tagging failed" in err
    assert [r["id"] for r in read_jsonl(out)] == ["ok", "boom", "no-text"]
    monkeypatch.setattr(Tagger, "tag", real_tag)  # bad input alone is reported, and is no failed job
    assert main(["tag", str(src), "-o", str(out), "--model", str(tiny_models), "-q"]) == 0
    assert "3 records: 2 tagged, 1 bad input, 0 failed" in capsys.readouterr().err


def test_an_input_record_with_its_own_error_field_is_not_shown_or_counted_as_failed(tmp_path, tiny_models, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "ocr-7", "text": "Japan will sell two frigates to Manila.",
                               "error": "page 2 unreadable"}) + "\n")
    assert main(["tag", str(src), "--model", str(tiny_models), "-q", "--format", "table"]) == 0
    captured = capsys.readouterr()
    assert "1 record: 1 tagged, 0 bad input, 0 failed" in captured.err
    assert "ocr-7" in captured.out and "error" not in captured.out
    page = tmp_path / "page.html"
    assert main(["tag", str(src), "--model", str(tiny_models), "-q", "--format", "html", "-o", str(page)]) == 0
    assert 'class="error"' not in page.read_text()


def test_resume_refuses_when_the_inputs_changed(tmp_path, tiny_models, capsys):
    folder, out = tmp_path / "news", tmp_path / "out.jsonl"
    folder.mkdir()
    for name in ("b.txt", "c.txt", "d.txt"):
        (folder / name).write_text(f"Japan will deliver two radars to Manila ({name}).")
    args = ["tag", str(folder), "-o", str(out), "--model", str(tiny_models), "-q"]
    assert main(args) == 0
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]))  # as if killed after two records
    (folder / "a.txt").write_text("A file added before resuming sorts first and shifts every record.")
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "record 1 of" in err and "'b.txt'" in err and "'a.txt'" in err and "inputs changed" in err
    assert out.read_text() == "".join(lines[:2])  # nothing written
    (folder / "a.txt").unlink()
    assert main(args + ["--resume"]) == 0
    assert out.read_text() == "".join(lines)
    out.write_text("".join(lines) + lines[0])  # more records written than there are inputs
    assert main(args + ["--resume"]) == 2 and "nothing more" in capsys.readouterr().err


def test_sharded_resume_checks_and_carries_on_each_shard(tmp_path, tiny_models):
    from diplotag.model.batch import read_inputs, run_tag_job

    src, out, ref = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "ref.jsonl"
    write_inputs(src, 30, bad_every=10)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = [str(src), "--model", str(tiny_models), "-q", "--batch-docs", "4"]
    subprocess.run(_cli("tag", *args, "-o", str(ref)), check=True, env=env)
    tagger = Tagger.from_pretrained(tiny_models, device="cpu")
    inputs = list(read_inputs([str(src)]))
    for rank, n in ((0, 12), (1, 5)):  # each process was stopped part-way, at a different record
        run_tag_job(tagger, inputs[:n], tmp_path / f"out.jsonl.shard{rank}of2", rank=rank, world=2, progress=False)
    shard1 = tmp_path / "out.jsonl.shard1of2"
    good = shard1.read_text()
    shard1.write_text(good.replace('"doc-1"', '"doc-2"', 1))  # a shard that is not this input's
    with pytest.raises(ValueError, match="record 1 of .*shard1of2 is 'doc-2' but the inputs now have 'doc-1'"):
        run_tag_job(tagger, inputs, shard1, rank=1, world=2, resume=True, progress=False)
    shard1.write_text(good)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "-m", "diplotag.cli", "tag", *args, "-o", str(out), "--resume"], check=True, env=env)
    assert read_jsonl(out) == read_jsonl(ref)
    assert not list(tmp_path.glob("out.jsonl.shard*"))


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_frozen_process_stops_a_sharded_run_instead_of_hanging_it(tmp_path, tiny_models):
    """Two processes started as a launcher that does not watch them would (srun, a script); the
    second freezes part-way (SIGSTOP: as a lost node, it neither works nor closes its sockets,
    so a collective barrier would wait for it for half an hour). The first must stop."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(src, 400)
    env = dict(os.environ, HF_HUB_OFFLINE="1", WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1")
    cmd = _cli("tag", str(src), "--model", str(tiny_models), "-q", "--batch-docs", "1", "-o", str(out),
               "--shard-timeout", "3")
    procs = [subprocess.Popen(cmd, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    try:
        shard1 = tmp_path / "out.jsonl.shard1of2"
        deadline = time.time() + 120
        while time.time() < deadline and (not shard1.exists() or shard1.read_bytes().count(b"\n") < 2):
            time.sleep(0.02)
        procs[1].send_signal(signal.SIGSTOP)
        _, err = procs[0].communicate(timeout=120)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert 0 < shard1.read_bytes().count(b"\n") < 200, "the second process froze part-way"
    assert procs[0].returncode == 1
    assert "shard1of2: its process stopped (no heartbeat for 3 s)" in err and "rerun with --resume" in err
    assert not out.exists() and (tmp_path / "out.jsonl.shard0of2").exists()


def test_a_failed_process_stops_the_wait_at_once(tmp_path):
    from diplotag.model.batch import ShardsFailed, shard_heartbeat, wait_for_shards

    shards = [tmp_path / "o.shard0of2", tmp_path / "o.shard1of2"]
    finish = [shard_heartbeat(s, every=0.05) for s in shards]
    finish[0](counts={"resumed": 0, "tagged": 1, "bad_input": 0, "failed": 0, "first_failure": None})
    finish[1](error="RuntimeError: CUDA out of memory")
    start = time.monotonic()
    with pytest.raises(ShardsFailed, match="shard1of2: its process failed: RuntimeError: CUDA out of memory"):
        wait_for_shards(shards, timeout=60)
    assert time.monotonic() - start < 5


def test_a_slow_but_living_process_is_waited_for(tmp_path):
    from diplotag.model.batch import shard_heartbeat, wait_for_shards

    shards = [tmp_path / "o.shard0of2", tmp_path / "o.shard1of2"]
    finish = [shard_heartbeat(s, every=0.05) for s in shards]
    counts = {"resumed": 0, "tagged": 2, "bad_input": 0, "failed": 0, "first_failure": None}
    finish[0](counts=counts)
    import threading

    threading.Timer(1.5, lambda: finish[1](counts=counts)).start()  # longer than the timeout, beating all along
    assert wait_for_shards(shards, timeout=0.5, poll=0.05) == [counts, counts]


README_EXAMPLE = Path(__file__).resolve().parents[1] / "README.md"


def test_default_model_loads_and_tags_quietly(tmp_path):
    """No library FutureWarning, load report or progress bar on `diplotag tag` or the README's
    Python example: the adapter supplies the head the base checkpoint lacks."""
    readme = README_EXAMPLE.read_text(encoding="utf-8")
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    noise = ("Warning", "LOAD REPORT", "MISSING", "newly initialized", "Loading weights", "it/s")
    python = subprocess.run([sys.executable, "-W", "default", "-c", example], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    assert not [w for w in noise if w in python.stderr], python.stderr
    article = tmp_path / "a.txt"
    article.write_text("Japan will deliver two patrol vessels to Manila, the ministry said.")
    cli = subprocess.run(_cli("tag", str(article), "-q"), env=dict(env, PYTHONWARNINGS="default"), cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert not [w for w in noise if w in cli.stderr], cli.stderr
    assert cli.stderr.strip() == "diplotag: 1 record: 1 tagged, 0 bad input, 0 failed"
