"""What the engine decides about a run besides its steps: who owns a run folder, what may change
on resume, early stopping, and the command under torchrun."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnkit.cli.main import main
from cnnkit.train import resume, train
from cnnkit.train.task import ClassificationTask
from conftest import final_state, small_config

HERE = Path(__file__).parent

SLOW_RUN = """
import sys, time
sys.path.insert(0, {here!r})
from pathlib import Path
from cnnkit.train import train
from cnnkit.train.task import ClassificationTask
from conftest import small_config

class Slow(ClassificationTask):
    calls = 0
    def losses(self, model, x, y):
        Slow.calls += 1
        if Slow.calls == 1:
            Path({marker!r}).write_text("training")
            time.sleep(4)
        return super().losses(model, x, y)

train(small_config({runs!r}, "same", epochs=1), task=Slow(), progress=False)
"""


def test_two_processes_claiming_one_name_one_is_refused_and_nothing_is_mixed(tmp_path, capsys):
    marker = tmp_path / "marker"
    code = SLOW_RUN.format(here=str(HERE), marker=str(marker), runs=str(tmp_path))
    first = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert first.poll() is None, first.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = main(["train", "--epochs", "1", "--runs-dir", str(tmp_path), "--name", "same"])
    assert status == 2
    assert "is in use by another training process" in capsys.readouterr().err
    assert first.wait(timeout=120) == 0, first.stderr.read()
    lines = (tmp_path / "same" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0]  # the first run's one epoch, alone
    assert main(["train", "--epochs", "1", "--runs-dir", str(tmp_path), "--name", "same"]) == 2  # finished: taken
    assert "already holds a run" in capsys.readouterr().err


def test_resume_applies_what_keeps_the_numbers_and_refuses_the_rest(tmp_path, capsys):
    train(small_config(tmp_path, "more"), progress=False, stop_after_steps=5)
    run = str(tmp_path / "more")
    assert main(["train", "--resume", run, "--batch-size", "16"]) == 2
    error = capsys.readouterr().err
    assert "--batch-size cannot change when resuming" in error and "(the run has 64, given 16)" in error
    assert final_state(run)["step"] == 5  # nothing ran
    result = resume(run, changes={"epochs": 3, "batch_size": 64}, progress=None)
    assert "resume: epochs changed from 2 to 3" in capsys.readouterr().err
    assert len(result.history) == 3 and result.step == 60 and result.config.epochs == 3
    assert json.loads((tmp_path / "more" / "config.json").read_text())["epochs"] == 3


class Plateau(ClassificationTask):
    """Validation accuracy that never improves after the first epoch."""

    def evaluate(self, model, imageset, dataset, config, device):
        result = super().evaluate(model, imageset, dataset, config, device)
        return {**result, "top1": 0.5} if imageset is dataset.val else result


def test_patience_stops_early_and_still_tests_the_best_checkpoint(tmp_path):
    result = train(small_config(tmp_path, "plateau", epochs=6, patience=2), task=Plateau(), progress=False)
    assert len(result.history) == 3  # epoch 1 best, epochs 2 and 3 no better: stop
    assert result.best["epoch"] == 0 and result.test["count"] == 269
    assert torch.load(tmp_path / "plateau" / "best.pt", weights_only=True)["epoch"] == 1
    report = json.loads((tmp_path / "plateau" / "report.json").read_text())
    assert report["epochs"] == 3 and report["task"] == "classification"


def test_every_rank_of_cnnkit_train_under_torchrun_exits_zero(tmp_path):
    if not torch.distributed.is_gloo_available():
        pytest.skip("torch was built without the gloo backend")
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "cnnkit.cli.main", "train", "--epochs", "1", "--batch-size", "64", "--runs-dir", str(tmp_path),
               "--name", "cli", "--format", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and printed[0]["test"]["count"] == 269  # rank 0 alone prints
    assert {"learning_curves.png", "confusion_test.png"} <= {p.name for p in (tmp_path / "cli").iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["cli"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_usage_error(tmp_path, capsys):
    for command in (["train"], ["detect", "train"], ["segment", "train"]):
        assert main([*command, "--device", "cuda", "--runs-dir", str(tmp_path)]) == 2
        assert "torch sees no CUDA device" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before a run folder was made
