"""The batch job with tiny random models: one output per input, in order; errors reported in
place; resume after kill -9; sharding over two processes keeps input order."""
import json
import os
import signal
import subprocess
import sys
import time

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
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "-m", "diplotag.cli", "tag", *args, "-o", str(out)], check=True, env=env)
    assert read_jsonl(out) == read_jsonl(ref)
    assert not list(tmp_path.glob("out.jsonl.shard*"))


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
