"""Training machinery on tiny random models: config validation, the saved Hugging Face folder,
resume after an interruption, and a 2-process data-parallel run on CPU."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from diplotag.cli import main
from diplotag.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path, tiny_base, small_corpus, task="tagger", **extra):
    cfg = yaml.safe_load((ROOT / "configs" / f"{task}.yaml").read_text())
    cfg.update(base_model=str(tiny_base), train_file=str(small_corpus / "train.jsonl"),
               dev_file=str(small_corpus / "dev.jsonl"), output_dir=str(tmp_path / task), epochs=2,
               batch_size=4, max_length=64, stride=16, learning_rate=1e-3)
    cfg["lora"] = dict(cfg["lora"], layers_to_transform=[1])  # the tiny base has two layers
    cfg.update(extra)
    path = tmp_path / f"{task}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("change,message", [
    ({"epochz": 3}, "epochz: Extra inputs are not permitted"),
    ({"task": None}, "task: Input should be 'tagger', 'stance', 'holder' or 'classifier'"),
    ({"epochs": -1}, "epochs: Input should be greater than 0"),
    ({"train_file": "nowhere.jsonl"}, "train_file: no such file"),
    ({"finetune": "half"}, "finetune: Input should be 'full' or 'lora'"),
    ({"max_length": 1024}, "max_length 1024 is more than"),  # the tiny base has 512 positions
    ({"encoder_layers": 3}, "encoder_layers 3 is more than"),  # and two layers
    ({"task": "classifier", "best_metric": "f1"}, "best_metric: 'f1' is none of macro_f1, accuracy, recall_"),
    ({"task": "classifier", "best_metric": "gate_pass_then_skip"},  # the gate's metrics need its prefilter
     "best_metric: 'gate_pass_then_skip' is none of macro_f1, accuracy, recall_"),
    ({"task": "classifier", "prefilter_c": 10, "best_metric": "gate_pass_then_skip"},  # and an offtopic label
     "best_metric: 'gate_pass_then_skip' is none of macro_f1, accuracy, recall_"),
    ({"prefilter_c": 10}, "prefilter_c: only a document classifier"),
    ({"task": "classifier", "prefilter_c": 10, "prefilter_keep_threshold": 0.9},
     "prefilter_keep_threshold (0.9) must be under prefilter_threshold (0.9)"),
])
def test_config_errors_are_one_clear_message(tmp_path, tiny_base, small_corpus, change, message, capsys):
    path = tiny_config(tmp_path, tiny_base, small_corpus)
    raw = yaml.safe_load(path.read_text())
    raw.update(change)
    path.write_text(yaml.safe_dump({k: v for k, v in raw.items() if v is not None}))
    if change.get("task", 1) is None:
        raw.pop("task")
        path.write_text(yaml.safe_dump(raw))
        message = "task: Field required"
    assert main(["train", "tagger", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_labels_in_data_missing_from_config_are_refused(tmp_path, tiny_base, small_corpus, capsys):
    path = tiny_config(tmp_path, tiny_base, small_corpus, labels=["EQUIPMENT_TRANSFER", "FREEDOM_OF_NAVIGATION"])
    assert main(["train", "tagger", "--config", str(path)]) == 2
    assert "'OPPOSITION_TO_COERCION' (first in s0)" in capsys.readouterr().err


def test_command_line_overrides_win(tmp_path, tiny_base, small_corpus):
    cfg = load_config(tiny_config(tmp_path, tiny_base, small_corpus), ["epochs=5", "lora.r=4", "labels=[A, B]"])
    assert cfg.epochs == 5 and cfg.lora.r == 4 and cfg.labels == ["A", "B"]


def test_trained_tagger_is_a_standard_hugging_face_folder(tmp_path, tiny_base, small_corpus):
    from transformers import AutoModelForTokenClassification, pipeline

    path = tiny_config(tmp_path, tiny_base, small_corpus)
    assert main(["train", "tagger", "--config", str(path)]) == 0
    out = tmp_path / "tagger"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "diplotag_config.yaml",
                 "stamp.json"):
        assert (out / name).exists(), name
    model = AutoModelForTokenClassification.from_pretrained(out)
    assert model.config.id2label[1] == "B-EQUIPMENT_TRANSFER"
    nlp = pipeline("token-classification", model=str(out), aggregation_strategy="simple")
    assert isinstance(nlp("Japan will deliver radars to Manila."), list)
    card = (out / "README.md").read_text()
    assert "eval_f1" in card and json.loads((out / "stamp.json").read_text())["data_sha256"] in card
    # checkpoints are chosen on decoded documents (eval_f1), not on seqeval's argmax tags (token_f1)
    metrics = json.loads((out / "stamp.json").read_text())["dev_metrics"]
    assert {"eval_f1", "eval_overlap_f1", "eval_token_f1"} <= set(metrics)


def test_a_full_fine_tune_ships_without_its_word_embeddings_and_loads_the_same(tmp_path, tiny_base, small_corpus):
    """The shipped form of a full fine-tune: every weight but the frozen word embeddings, in bf16;
    loaded back (embeddings from the base) it tags as the run's full folder does."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification

    from diplotag.model.tagger import load_model
    from diplotag.train.common import ship_as_default

    path = tiny_config(tmp_path, tiny_base, small_corpus, finetune="full", freeze_word_embeddings=True)
    assert main(["train", "tagger", "--config", str(path)]) == 0
    run, shipped = tmp_path / "tagger", tmp_path / "shipped"
    ship_as_default(run, shipped)
    weights = load_file(shipped / "model.safetensors")
    assert not any("word_embeddings" in k for k in weights) and all(v.dtype == torch.bfloat16 for v in weights.values())
    full, small = (load_model(p, AutoModelForTokenClassification).eval() for p in (run, shipped))
    assert torch.equal(full.get_input_embeddings().weight, small.get_input_embeddings().weight)  # frozen: the base's
    ids = torch.randint(1000, 20000, (2, 40))
    with torch.no_grad():
        a, b = full(input_ids=ids).logits, small(input_ids=ids).logits
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.95 and (a - b).abs().max() < 0.1


def test_the_head_learns_at_its_own_rate(tmp_path, tiny_base, small_corpus):
    from transformers import AutoModelForTokenClassification

    from diplotag.train.common import optimizer_with_head_rate

    cfg = load_config(tiny_config(tmp_path, tiny_base, small_corpus, learning_rate=1e-4, head_learning_rate_multiplier=10))
    model = AutoModelForTokenClassification.from_pretrained(tiny_base, num_labels=7)
    groups = optimizer_with_head_rate(model, cfg, "classifier").param_groups
    head = [g["lr"] for g in groups if any(p is model.classifier.weight for p in g["params"])]
    assert head == [pytest.approx(1e-3)] and sorted({round(g["lr"], 8) for g in groups}) == [1e-4, 1e-3]


def test_trained_stance_model_loads_in_a_text_classification_pipeline(tmp_path, tiny_base, small_corpus):
    from transformers import pipeline

    path = tiny_config(tmp_path, tiny_base, small_corpus, task="stance", finetune="full")
    assert main(["train", "stance", "--config", str(path)]) == 0
    nlp = pipeline("text-classification", model=str(tmp_path / "stance"))
    result = nlp({"text": "equipment transfer", "text_pair": "Japan « will deliver radars » to Manila."})
    result = result[0] if isinstance(result, list) else result
    assert result["label"] in ("support", "oppose", "neutral")


def test_a_lora_stance_model_ships_with_its_calibration_and_settings(tmp_path, tiny_base, tiny_models, small_corpus):
    """Calibration is written into the run's config.json after training; the shipped adapter
    folder must carry it, or `diplotag tag` reads uncalibrated stance scores."""
    from diplotag.model.tagger import STANCE_TEMPERATURE, Tagger
    from diplotag.train.common import ship_as_default

    path = tiny_config(tmp_path, tiny_base, small_corpus, task="stance", holder_in_input=True)
    assert main(["train", "stance", "--config", str(path)]) == 0
    config = tmp_path / "stance" / "config.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), **{STANCE_TEMPERATURE: 1.5})))  # as calibrate does
    shipped = tmp_path / "models"
    ship_as_default(tmp_path / "stance", shipped / "stance")
    assert (shipped / "stance" / "adapter_model.safetensors").exists()
    tagger = Tagger.from_pretrained(tiny_models / "tagger", stance_path=shipped / "stance")
    assert tagger.stance_temperature == 1.5 and tagger.stance_reads_holder  # its settings travel with it too


def _cli(*args):
    return [sys.executable, "-m", "diplotag.cli", *args]


def test_resume_after_interruption_mid_epoch(tmp_path, tiny_base, small_corpus):
    path = tiny_config(tmp_path, tiny_base, small_corpus, epochs=20, batch_size=8, eval_steps=3,
                       early_stopping_patience=0)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(_cli("train", "tagger", "--config", str(path)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "tagger" / "checkpoints"

    def steps_saved():  # complete checkpoints only: a kill between the folder and its state would race
        return [int(p.parent.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*/trainer_state.json")]

    deadline = time.time() + 300
    while time.time() < deadline and max(steps_saved(), default=0) < 6:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = max(steps_saved())
    assert not (tmp_path / "tagger" / "model.safetensors").exists(), "the first run was stopped before the end"
    saved_history = json.loads((checkpoints / f"checkpoint-{last}" / "trainer_state.json").read_text())["log_history"]
    (checkpoints / "checkpoint-9999").mkdir()  # a save torn by the kill: no trainer_state.json
    done = subprocess.run(_cli("train", "tagger", "--config", str(path), "--resume"), env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (checkpoints / "checkpoint-9999").exists()
    final = max(steps_saved())
    state = json.loads((checkpoints / f"checkpoint-{final}" / "trainer_state.json").read_text())
    assert state["epoch"] == pytest.approx(20) and final > last
    # the second run started at the saved step: the first run's log (its timings included) is carried
    # over as it was, where a run started again from step 0 would have logged those steps anew
    assert state["log_history"][:len(saved_history)] == saved_history
    assert (tmp_path / "tagger" / "model.safetensors").exists()


def count_windows(small_corpus, tiny_base):
    from transformers import AutoTokenizer

    from diplotag.data.align import encode_document, window_bounds, special_tokens_template

    tok = AutoTokenizer.from_pretrained(tiny_base)
    prefix, suffix = special_tokens_template(tok)
    return sum(len(window_bounds(len(encode_document(tok, json.loads(line)["text"]).input_ids),
                                 64 - len(prefix) - len(suffix), 16))
               for line in open(small_corpus / "train.jsonl"))


def test_two_process_data_parallel_training_on_cpu(tmp_path, tiny_base, small_corpus):
    path = tiny_config(tmp_path, tiny_base, small_corpus, epochs=1, finetune="full", early_stopping_patience=0)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # two CPU processes as torchrun starts them (accelerate launch does the same on GPUs)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "-m", "diplotag.cli", "train", "tagger", "--config", str(path)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads(next((tmp_path / "tagger" / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    n = count_windows(small_corpus, tiny_base)
    assert math.ceil(n / 4) != math.ceil(math.ceil(n / 2) / 4)  # the two cases are told apart
    assert state["global_step"] == math.ceil(math.ceil(n / 2) / 4), "each process took half the windows"
    assert (tmp_path / "tagger" / "model.safetensors").exists()
