"""`cnnkit detect train` under torchrun: two processes on the CPU (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnkit.detection.predict import evaluate_detector, load_detector
from cnnkit.detection.task import DetectionConfig

WORKER = Path(__file__).with_name("ddp_detect_worker.py")
ARGS = ["--epochs", "1", "--train-images", "8", "--val-images", "5", "--test-images", "5", "--batch-size", "4",
        "--pretrain-steps", "20", "--warmup-steps", "1", "--threads", "1", "--device", "cpu",
        "--checkpoint-every-seconds", "0", "--name", "ddp", "--format", "json"]


@pytest.fixture(scope="module")
def torchrun(tmp_path_factory):
    try:
        import torch.distributed.run  # noqa: F401
    except ImportError:
        pytest.skip("torch.distributed.run (torchrun) is not available in this torch build")
    if not torch.distributed.is_gloo_available():
        pytest.skip("torch was built without the gloo backend")
    out = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
               str(out), "detect", "train", *ARGS, "--runs-dir", str(out / "runs")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stdout + result.stderr  # torchrun: every rank exited 0
    return out, result


def test_the_ranks_train_in_step_and_only_rank_0_writes_and_prints(torchrun):
    out, result = torchrun
    weights = [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert [key for key in weights[0] if not torch.equal(weights[0][key], weights[1][key])] == []
    assert [path.name for path in (out / "runs").iterdir()] == ["ddp"]
    printed = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and json.loads(printed[0])["run"] == str(out / "runs" / "ddp")
    report = json.loads((out / "runs" / "ddp" / "report.json").read_text())
    assert report["environment"]["processes"] == 2 and report["steps"] == 2  # 8 images, 2 per process a step


def test_the_test_figures_equal_a_single_process_evaluation_of_best_pt(torchrun):
    out, _ = torchrun
    run = out / "runs" / "ddp"
    report = json.loads((run / "report.json").read_text())
    config = DetectionConfig.from_dict(json.loads((run / "config.json").read_text()))
    task = config.task()
    task.say = lambda line: None
    data = task.load_data(config)
    single = task.evaluate(load_detector(run), data.test, data, config, torch.device("cpu"))
    assert json.dumps(single["voc_ap50"]) == json.dumps(report["voc_ap50"])
    figures = evaluate_detector(load_detector(run), data.test, config.batch_size)
    for key in ("map", "map50", "map75", "map_small", "voc_map50", "images"):
        assert report["test"][key] == figures[key] == single[key], key
    assert report["test"]["loss"] == single["loss"] and report["test"]["map50"] > 0
    record = json.loads((run / "metrics.jsonl").read_text())
    validation = task.evaluate(load_detector(run / "last.pt"), data.val, data, config, torch.device("cpu"))
    assert (record["val_map"], record["val_loss"]) == (validation["map"], validation["loss"])
