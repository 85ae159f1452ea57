"""The installed wheel works: built from a copy of the project, installed without -e into a
fresh virtual environment, its `diplotag tag` tags a text with the shipped models from a
folder outside the project. Nothing is downloaded."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", "runs", "build", "dist", "*.egg-info", "__pycache__", ".git",
                              ".pytest_cache", ".hypothesis", "demo.html")


def test_wheel_ships_the_models_and_its_diplotag_tag_works(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)  # build from a copy: the checkout stays clean
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("diplotag-*.whl"))

    shipped = {f"diplotag/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "model/default").rglob("*") if p.is_file()}
    shipped |= {f"diplotag/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "configs").glob("*.yaml")}
    shipped |= {"diplotag/data/holders.tsv", "diplotag/data/GUIDELINES.md"}
    assert shipped - set(zipfile.ZipFile(wheel).namelist()) == set()

    # A fresh venv whose dependencies (torch, transformers, …) come from this one's site-packages
    # through a .pth line: a path in a .pth is added as it is, without running the .pth files
    # there, so this environment's editable diplotag stays out and the wheel's is the one imported.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", str(wheel)], check=True, capture_output=True)

    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "a.txt").write_text("Japan will deliver two patrol vessels to Manila next year, the ministry said.")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    where = subprocess.run([python, "-c", "import diplotag; print(diplotag.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(site.resolve()), where
    run = subprocess.run([venv / "bin" / "diplotag", "tag", "a.txt", "-o", "out.jsonl", "-q"], cwd=work, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["a.txt"] and records[0]["spans"], records
    assert {s["label"] for s in records[0]["spans"]} <= {"EQUIPMENT_TRANSFER", "FREEDOM_OF_NAVIGATION",
                                                         "OPPOSITION_TO_COERCION"}
    assert "1 record: 1 tagged, 0 bad input, 0 failed" in run.stderr
