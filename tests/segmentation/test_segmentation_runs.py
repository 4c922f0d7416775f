"""`cnnkit segment train` through the training engine: exact resume after SIGKILL, two processes
under torchrun, and checkpoints of the earlier segmentation loop still opening."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnkit.cli.main import main
from cnnkit.data.images import save_image
from cnnkit.segmentation import FCN, PatchClassifier, digit_scene_segmentation, evaluate_segmenter, load_segmenter
from cnnkit.data.masks import run_splits

HERE = Path(__file__).parent
# 12 scenes, 3 steps of 4 per epoch, 2 epochs; crops and flips exercise the augmentation's generator
TINY = ["--epochs", "2", "--train-images", "12", "--val-images", "2", "--test-images", "3", "--batch-size", "4",
        "--crop-size", "48", "--flip", "--threads", "1", "--device", "cpu", "--checkpoint-every-seconds", "0"]

KILLED_AT_STEP = """
import os, signal, sys
from cnnkit.cli.main import main
from cnnkit.segmentation import task as segmentation_task

class KilledAtStep(segmentation_task.SegmentationTask):
    calls = 0
    def losses(self, model, inputs, targets):
        KilledAtStep.calls += 1
        if KilledAtStep.calls == {step}:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().losses(model, inputs, targets)

segmentation_task.SegmentationConfig.task = lambda self: KilledAtStep()
sys.exit(main(["segment", "train", *{argv!r}]))
"""


def last_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "last.pt", weights_only=True)


def same_tensors(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, capsys):
    assert main(["segment", "train", *TINY, "--runs-dir", str(tmp_path), "--name", "reference", "--format", "json"]) == 0
    argv = [*TINY, "--runs-dir", str(tmp_path), "--name", "killed", "--checkpoint-every-steps", "2"]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_STEP.format(step=5, argv=argv)], capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    saved = last_state(tmp_path / "killed")
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 1, 4)  # mid epoch 2; step 5 was lost
    assert main(["segment", "train", "--resume", str(tmp_path / "killed"), "--format", "json"]) == 0
    resumed, reference = last_state(tmp_path / "killed"), last_state(tmp_path / "reference")
    assert resumed["step"] == reference["step"] == 6
    assert same_tensors(resumed["model"], reference["model"])
    assert [r["val_mean_iou"] for r in resumed["history"]] == [r["val_mean_iou"] for r in reference["history"]]
    outputs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert outputs[0]["test"]["mean_iou"] == outputs[1]["test"]["mean_iou"]


def test_two_processes_under_torchrun(tmp_path):
    try:
        import torch.distributed.run  # noqa: F401
    except ImportError:
        pytest.skip("torch.distributed.run (torchrun) is not available in this torch build")
    if not torch.distributed.is_gloo_available():
        pytest.skip("torch was built without the gloo backend")
    work = tmp_path / "cwd"
    work.mkdir()
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(HERE / "segment_ddp_worker.py"), str(tmp_path), *TINY, "--runs-dir", str(tmp_path / "runs"),
               "--name", "ddp", "--format", "json"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=240, env=environment)
    assert result.returncode == 0, result.stdout + result.stderr  # torchrun: 0 only when every rank exits 0
    assert same_tensors(torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt"))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1] and ranks[0]["images"] == 3  # 3 test scenes split 2 + 1, each counted once
    # only rank 0 writes: one run folder, nothing in the working folder, one result printed
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["ddp"] and not list(work.iterdir())
    printed = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1
    run = tmp_path / "runs" / "ddp"
    report = json.loads((run / "report.json").read_text())
    assert report["environment"]["processes"] == 2 and json.loads(printed[0])["test"] == report["test"]
    assert same_tensors(torch.load(run / "last.pt", weights_only=True)["model"], torch.load(tmp_path / "rank0.pt"))
    single = subprocess.run([sys.executable, "-m", "cnnkit.cli.main", "segment", "evaluate", str(run), "--device", "cpu",
                             "--format", "json"], cwd=work, capture_output=True, text=True, timeout=120, env=environment)
    assert single.returncode == 0, single.stderr
    assert json.loads(single.stdout)["mean_iou"] == report["test"]["mean_iou"] == ranks[0]["mean_iou"]


OLD_CONFIG = {  # dataclasses.asdict of the SegmentationConfig of cnnkit's earlier loop
    "method": "fcn", "data": "digit-scenes", "image_dir": None, "variant": "16s", "backbone": "resnet18",
    "patch_size": 9, "patches_per_image": 64, "epochs": 1, "batch_size": 4, "optimizer": "adamw", "lr": 2e-3,
    "weight_decay": 1e-4, "crop_size": None, "flip": False, "train_images": 8, "val_images": 2, "test_images": 2,
    "lenient": False, "seed": 0, "threads": 1, "runs": "runs", "name": "old",
}


@pytest.mark.parametrize("method", ["fcn", "sliding"])
def test_checkpoints_of_the_earlier_loop_still_evaluate_and_predict(tmp_path, capsys, method):
    config = {**OLD_CONFIG, "method": method}
    classes = digit_scene_segmentation("test", 1).classes
    torch.manual_seed(0)
    model = FCN(len(classes), "16s") if method == "fcn" else PatchClassifier(len(classes), 9)
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config, indent=2))
    torch.save({"format": "cnnkit-segmentation-1", "config": config, "classes": classes,
                "palette": [list(c) for c in digit_scene_segmentation("test", 1).palette], "ignore_index": 255,
                "model": model.state_dict(), "optimizer": torch.optim.AdamW(model.parameters()).state_dict(),
                "epoch": 1, "batch": 0, "step": 2, "history": []}, run / "best.pt")
    segmenter = load_segmenter(run)
    assert segmenter.method == method and segmenter.classes == classes
    expected = evaluate_segmenter(segmenter, run_splits(config).test)["mean_iou"]
    assert main(["segment", "evaluate", str(run / "best.pt"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_iou"] == expected
    image = tmp_path / "scene.png"
    save_image(digit_scene_segmentation("test", 1).image(0), image)
    assert main(["segment", "predict", str(run), str(image), "--device", "cpu", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["height"] == 64
