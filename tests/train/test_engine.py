"""The engine end to end on digits: accuracy of the defaults, the run folder, exact resume
(across processes, after SIGKILL, past a corrupt checkpoint), and runs that must stop."""

import json
import os
import signal
import time

import pytest
import torch

from cnnkit.train import TrainConfig, TrainingError, load_trained, resume, train
from cnnkit.train.checkpoint import LAST, PREVIOUS
from cnnkit.train.task import ClassificationTask
from conftest import assert_same_tensors, final_state, run_python, small_config


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    started = time.perf_counter()
    result = train(TrainConfig(runs_dir=str(runs)), progress=False)
    return result, time.perf_counter() - started


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted small run that resumed runs must reproduce bit for bit."""
    runs = tmp_path_factory.mktemp("reference")
    train(small_config(runs, "reference"), progress=False)
    return final_state(runs / "reference")


def test_defaults_reach_97_percent_quickly(default_run):
    result, seconds = default_run
    assert result.test["top1"] >= 0.97
    assert result.test["count"] == 269
    if os.getloadavg()[0] < os.cpu_count():  # other work on a shared machine only adds time
        assert seconds < 60


def test_run_folder(default_run):
    result, _ = default_run
    run_dir = result.run_dir
    assert run_dir.name == "sample_net-digits"
    assert {p.name for p in run_dir.iterdir()} == {"config.json", "metrics.jsonl", "last.pt", "previous.pt",
                                                   "best.pt", "report.json", "report.md"}
    assert TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())) == result.config
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(result.config.epochs))
    assert {"train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "seconds",
            "images_per_second"} <= lines[0].keys()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["test"]["top1"] == result.test["top1"]
    assert sum(map(sum, report["confusion_matrix"])) == 269 and len(report["per_class_accuracy"]) == 10
    assert report["skipped"] == [] and report["environment"]["torch"] == torch.__version__
    best = torch.load(run_dir / "best.pt", weights_only=True)
    assert best["epoch"] == result.best["epoch"] + 1  # saved after that epoch


def test_load_trained_gives_the_reported_accuracy(default_run):
    from cnnkit.data import load_dataset
    from cnnkit.train import evaluate

    result, _ = default_run
    trained = load_trained(result.run_dir)
    assert trained.checkpoint.name == "best.pt" and not trained.model.training
    assert trained.classes == [str(d) for d in range(10)] and trained.image_size == (28, 28)
    test = evaluate(trained.model, load_dataset("digits").test, mean=trained.mean, std=trained.std)
    assert test["top1"] == result.test["top1"]
    assert load_trained(result.run_dir / LAST).checkpoint.name == LAST


def test_a_second_run_gets_a_new_name_and_a_taken_name_is_refused(default_run):
    result, _ = default_run
    config = small_config(result.run_dir.parent, None, epochs=1)
    assert train(config, progress=False, stop_after_steps=1).run_dir.name == "sample_net-digits-2"
    with pytest.raises(ValueError, match="already holds a run"):
        train(small_config(result.run_dir.parent, "sample_net-digits"), progress=False)


def test_half_then_new_process_equals_uninterrupted(tmp_path, reference):
    half = train(small_config(tmp_path, "split"), progress=False, stop_after_steps=27)  # mid epoch 2
    assert half.step == 27 and half.test is None
    state = final_state(tmp_path / "split")
    assert (state["epoch"], state["batch"], state["step"]) == (1, 7, 27)
    run_python(f"from cnnkit.train import resume; resume({str(tmp_path / 'split')!r}, progress=False)", tmp_path)
    resumed = final_state(tmp_path / "split")
    assert_same_tensors(resumed["model"], reference["model"])
    assert resumed["step"] == reference["step"] == 40
    assert resumed["schedule"] == reference["schedule"]
    for a, b in zip(resumed["optimizer"]["state"].values(), reference["optimizer"]["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert [r["val_top1"] for r in resumed["history"]] == [r["val_top1"] for r in reference["history"]]


KILL_AT_STEP = """
import os, signal
from cnnkit.train import train
from cnnkit.train.task import ClassificationTask
from conftest import small_config

class KilledAtStep(ClassificationTask):
    calls = 0
    def losses(self, model, x, y):
        KilledAtStep.calls += 1
        if KilledAtStep.calls == {step}:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().losses(model, x, y)

train(small_config({runs!r}, "killed", checkpoint_every_steps=4), task=KilledAtStep(), progress=False)
"""


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, reference):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n" + KILL_AT_STEP.format(
        step=31, runs=str(tmp_path))
    result = run_python(code, tmp_path, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert final_state(tmp_path / "killed")["step"] == 28  # steps 29 and 30 were lost
    resume(tmp_path / "killed", progress=False)
    assert_same_tensors(final_state(tmp_path / "killed")["model"], reference["model"])


def test_truncated_last_checkpoint_resumes_from_previous(tmp_path, reference, capsys):
    train(small_config(tmp_path, "cut", checkpoint_every_steps=10), progress=False, stop_after_steps=25)
    last = tmp_path / "cut" / LAST
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    resume(tmp_path / "cut", progress=False)
    assert f"corrupt checkpoint {last}" in capsys.readouterr().err
    assert_same_tensors(final_state(tmp_path / "cut")["model"], reference["model"])
    assert (tmp_path / "cut" / PREVIOUS).exists()


class NanAtStep(ClassificationTask):
    def __init__(self, step):
        self.step, self.calls = step, 0

    def losses(self, model, x, y):
        self.calls += 1
        terms = super().losses(model, x, y)
        return {**terms, "loss": terms["loss"] * float("nan")} if self.calls == self.step else terms


def test_non_finite_loss_names_the_step_and_keeps_the_checkpoint(tmp_path):
    config = small_config(tmp_path, "nan", checkpoint_every_steps=5)
    with pytest.raises(TrainingError, match=r"loss is nan at step 13 \(epoch 1, batch 13 of 20\).*last good checkpoint"):
        train(config, task=NanAtStep(13), progress=False)
    state = final_state(tmp_path / "nan")
    assert state["step"] == 10 and all(torch.isfinite(t).all() for t in state["model"].values())


class OutOfMemory(ClassificationTask):
    def losses(self, model, x, y):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")


def test_out_of_memory_names_the_batch_size(tmp_path):
    with pytest.raises(TrainingError, match="out of memory .* batch size 64 .* --batch-size 32"):
        train(small_config(tmp_path, "oom"), task=OutOfMemory(), progress=False)
