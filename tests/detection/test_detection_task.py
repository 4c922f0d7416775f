"""Detection and Mask R-CNN through the training engine: exact resume after SIGKILL, the splits,
R-CNN's closed-form stage, evaluation that leaves the run's random stream alone, and the
checkpoints written before the engine."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from cnnkit.cli.main import main
from cnnkit.data.images import save_image
from cnnkit.detection.checkpoints import BEFORE_ENGINE, DETECTION, INSTANCES
from cnnkit.data.coco import write_coco
from cnnkit.detection.fast_rcnn import fast_rcnn
from cnnkit.detection.faster_rcnn import faster_rcnn
from cnnkit.detection.instance_predict import evaluate_mask_rcnn, load_mask_rcnn
from cnnkit.inference import open_model
from cnnkit.detection.mask_rcnn import mask_rcnn
from cnnkit.detection.mask_task import MaskRCNNConfig, MaskRCNNTask, load_instance_splits
from cnnkit.detection.predict import evaluate_detector, load_detector
from cnnkit.data.scenes import digit_scenes
from cnnkit.detection.splits import load_splits
from cnnkit.detection.task import DetectionConfig
from cnnkit.train import resume, train

TINY = ["--epochs", "2", "--train-images", "12", "--val-images", "2", "--test-images", "2", "--batch-size", "2",
        "--pretrain-steps", "2", "--warmup-steps", "2", "--threads", "1", "--device", "cpu",
        "--checkpoint-every-steps", "2", "--checkpoint-every-seconds", "0", "--format", "json"]
"""Faster R-CNN with augmentation, 6 steps an epoch, a checkpoint every 2 steps."""

KILLED_AT_STEP = """
import os, signal
from {module} import {config}, {task}

class KilledAtStep({task}):
    calls = 0
    def losses(self, model, images, targets):
        KilledAtStep.calls += 1
        if KilledAtStep.calls == {step}:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().losses(model, images, targets)

{run}
"""
"""A task that SIGKILLs its process in the ``step``-th training step, and the code that runs it."""


def killed(code: str, cwd) -> None:
    """Run ``code`` in a fresh interpreter, which must die of SIGKILL."""
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr


def last(run_dir) -> dict:
    return torch.load(run_dir / "last.pt", weights_only=True)


def assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    assert [key for key in first if not torch.equal(first[key], second[key])] == []


def same_figures(first: dict, second: dict) -> bool:
    """Equal evaluations but for the time they took (NaN, a class without objects, equals NaN)."""
    def text(figures):
        return json.dumps({key: value for key, value in figures.items() if key != "seconds_per_image"}, sort_keys=True)

    return text(first) == text(second)


def validation_figures(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key.startswith(("val_", "train_"))} for record in history]


def test_detect_train_killed_mid_epoch_resumes_bit_identical(tmp_path, capsys):
    assert main(["detect", "train", *TINY, "--runs-dir", str(tmp_path), "--name", "reference"]) == 0
    killed_argv = ["detect", "train", *TINY, "--runs-dir", str(tmp_path), "--name", "killed"]
    run = f"from cnnkit.cli.main import main\nDetectionConfig.task = lambda self: KilledAtStep()\nmain({killed_argv!r})"
    killed(KILLED_AT_STEP.format(module="cnnkit.detection.task", config="DetectionConfig", task="DetectionTask", step=5,
                                 run=run), tmp_path)
    state = last(tmp_path / "killed")
    assert (state["epoch"], state["batch"], state["step"]) == (0, 4, 4)  # step 5 was lost mid-epoch 1
    capsys.readouterr()
    assert main(["detect", "train", "--resume", str(tmp_path / "killed"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"] == str(tmp_path / "killed")
    reference, resumed = last(tmp_path / "reference"), last(tmp_path / "killed")
    assert resumed["step"] == reference["step"] == 12
    assert_same_weights(resumed["model"], reference["model"])
    assert validation_figures(resumed["history"]) == validation_figures(reference["history"])


def test_mask_rcnn_killed_mid_epoch_resumes_bit_identical(tmp_path):
    config = MaskRCNNConfig(epochs=2, train_images=8, val_images=2, test_images=2, batch_size=2, warmup_steps=2,
                            threads=1, device="cpu", checkpoint_every_steps=2, checkpoint_every_seconds=0.0,
                            runs_dir=str(tmp_path), name="reference")
    result = train(config, progress=False)
    assert result.run_dir.name == "reference" and {"mask_map", "box_map", "loss"} <= set(result.test)
    assert "val_mask_map" in result.history[0] and "train_loss_mask" in result.history[0]
    values = {**config.to_dict(), "name": "killed"}
    run = f"from cnnkit.train import train\ntrain(MaskRCNNConfig.from_dict({values!r}), task=KilledAtStep(), progress=False)"
    killed(KILLED_AT_STEP.format(module="cnnkit.detection.mask_task", config="MaskRCNNConfig", task="MaskRCNNTask", step=3,
                                 run=run), tmp_path)
    assert last(tmp_path / "killed")["step"] == 2
    resume(tmp_path / "killed", task=MaskRCNNTask(), progress=False)
    reference, resumed = last(tmp_path / "reference"), last(tmp_path / "killed")
    assert resumed["step"] == reference["step"] == 8
    assert_same_weights(resumed["model"], reference["model"])
    assert validation_figures(resumed["history"]) == validation_figures(reference["history"])
    assert open_model(result.run_dir).task == "instance-segmentation"
    model = load_mask_rcnn(result.run_dir)
    again = evaluate_mask_rcnn(model, load_instance_splits(config).test, batch_size=2, device="cpu")
    report = json.loads((result.run_dir / "report.json").read_text())
    assert {key: again[key] for key in ("mask_map", "mask_map50", "box_map")} == {
        key: report["test"][key] for key in ("mask_map", "mask_map50", "box_map")}


def test_rcnn_fine_tunes_through_the_engine_and_fits_its_svms_on_the_best_epoch(tmp_path):
    config = DetectionConfig(method="rcnn", train_images=4, val_images=2, test_images=3, epochs=1, batch_size=2,
                             pretrain_steps=0, warmup_steps=0, threads=1, device="cpu", runs_dir=str(tmp_path))
    result = train(config, progress=False)
    assert result.run_dir.name == "rcnn-digit-scenes" and set(result.history[0]) >= {"train_loss_classifier", "val_map"}
    model = load_detector(result.run_dir)
    assert model.svms_fitted  # best.pt holds the finished model: SVMs and box regressors
    again = evaluate_detector(model, load_splits(config).test, batch_size=2)
    assert again["map"] == result.test["map"] and again["voc_map50"] == result.test["voc_map50"]


def test_coco_splits_are_seeded_disjoint_and_cover_the_file(tmp_path):
    path = write_coco(digit_scenes("val", count=12), tmp_path / "coco")
    splits = load_splits(DetectionConfig(data=str(path), image_dir=str(tmp_path / "coco" / "images")))
    ids = {split: set(part.image_ids) for split, part in splits._asdict().items()}
    assert [len(part) for part in splits] == [10, 1, 1]
    assert not ids["val"] & ids["test"] and not (ids["val"] | ids["test"]) & ids["train"]
    assert ids["train"] | ids["val"] | ids["test"] == set(range(1, 13))
    again = load_splits(DetectionConfig(data=str(path), image_dir=str(tmp_path / "coco" / "images"), seed=1))
    assert set(again.val.image_ids) != ids["val"] or set(again.test.image_ids) != ids["test"]
    capped = load_splits(DetectionConfig(data=str(path), train_images=3, image_dir=str(tmp_path / "coco" / "images")))
    assert len(capped.train) == 3 and capped.val.image_ids == splits.val.image_ids
    two = write_coco(digit_scenes("val", count=2), tmp_path / "two")
    with pytest.raises(ValueError, match="2 image.*at least 3"):
        load_splits(DetectionConfig(data=str(two), image_dir=str(tmp_path / "two" / "images")))


def test_evaluation_leaves_the_global_random_stream_alone_and_repeats():
    config = DetectionConfig(train_images=2, val_images=3, test_images=2, batch_size=2, device="cpu")
    task = config.task()
    task.say = lambda line: None
    data = task.load_data(config)
    model = faster_rcnn("small", data.train.categories)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = task.evaluate(model, data.val, data, config, torch.device("cpu"))
    second = task.evaluate(model, data.val, data, config, torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected)  # no draw, no reset of the run's generator
    assert same_figures(first, second) and first["images"] == 3 and first["loss"] > 0


@pytest.mark.parametrize("build", [faster_rcnn, fast_rcnn, mask_rcnn])
def test_mixed_precision_step_gives_finite_losses_and_float32_boxes(build):
    scenes = digit_scenes("train", count=2)
    model = build("small", scenes.categories)
    images = [scenes.image(i) for i in range(2)]
    targets = [{**target, "proposals": target["boxes"] + 2} for target in scenes.targets[:2]]  # for Fast R-CNN
    with torch.autocast("cpu", dtype=torch.bfloat16):  # --amp on a CPU
        losses = model.loss(images, targets)
        found = model.predict(images[:1], [targets[0]["proposals"]]) if build is fast_rcnn else model.predict(images[:1])
    assert all(torch.isfinite(value) for value in losses.values())
    assert found[0].boxes.dtype == torch.float32


def write_before_engine(run_dir, task: str, model, config: dict) -> None:
    """A run folder as the detection and Mask R-CNN loops wrote it before the training engine."""
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(config))
    torch.save({"format": BEFORE_ENGINE[task], "config": config, "categories": model.categories,
                "model": model.state_dict(), "optimizer": {}, "epoch": 1, "batch": 0, "step": 3, "history": []},
               run_dir / "best.pt")


OLD_CONFIG = {"data": "digit-scenes", "image_dir": None, "lenient": False, "backbone": "small", "epochs": 1,
              "batch_size": 2, "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4, "warmup_steps": 50,
              "train_images": 4, "val_images": 2, "test_images": 3, "min_size": 128, "max_size": 256, "seed": 0,
              "threads": None, "runs": "runs", "name": None}


def test_checkpoints_written_before_the_engine_still_predict_and_evaluate(tmp_path, capsys):
    torch.manual_seed(0)
    categories = [str(digit) for digit in range(10)]
    detector = faster_rcnn("small", categories)
    write_before_engine(tmp_path / "old", DETECTION, detector, {
        **OLD_CONFIG, "method": "faster-rcnn", "optimizer": "sgd", "patience": 3, "augment": True,
        "pretrain_steps": 300, "init_from": None})
    image = tmp_path / "scene.png"
    save_image(digit_scenes("test", count=1).image(0), image)
    assert main(["detect", "predict", str(tmp_path / "old"), str(image), "--score", "0", "--format", "json",
                 "--device", "cpu"]) == 0
    assert all(record["file_name"] == str(image) for record in json.loads(capsys.readouterr().out))
    assert_same_weights(open_model(tmp_path / "old").model.state_dict(), detector.state_dict())
    assert main(["detect", "evaluate", str(tmp_path / "old" / "best.pt"), "--format", "json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 3 and same_figures(result, evaluate_detector(detector, digit_scenes("test", 3)))

    instances = mask_rcnn("small", categories)
    write_before_engine(tmp_path / "old-mask", INSTANCES, instances, OLD_CONFIG)
    assert open_model(tmp_path / "old-mask").task == "instance-segmentation"
    assert open_model(tmp_path / "old").task == "detection"
    loaded = load_mask_rcnn(tmp_path / "old-mask")
    assert_same_weights(loaded.state_dict(), instances.state_dict())
    with pytest.raises(ValueError, match="holds a instance-segmentation model, not a detection one"):
        load_detector(tmp_path / "old-mask")


def test_an_old_coco_run_is_not_tested_on_its_training_images(tmp_path, capsys):
    path = write_coco(digit_scenes("val", count=5), tmp_path / "coco")
    write_before_engine(tmp_path / "old", DETECTION, faster_rcnn("small", [str(d) for d in range(10)]), {
        **OLD_CONFIG, "data": str(path), "image_dir": str(tmp_path / "coco" / "images"), "method": "faster-rcnn"})
    assert main(["detect", "evaluate", str(tmp_path / "old")]) == 2
    assert "trained before validation and test were split apart" in capsys.readouterr().err
    assert main(["detect", "evaluate", str(tmp_path / "old"), "--data", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 5


@pytest.mark.parametrize("build", [faster_rcnn, mask_rcnn])
def test_an_image_without_objects_trains_as_a_negative(build):
    scenes = digit_scenes("train", count=1)
    model = build("small", scenes.categories)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 128, 128, dtype=torch.bool)}  # a COCO image kept as a negative
    losses = model.loss([scenes.image(0), scenes.image(0)], [scenes.targets[0], empty])
    assert all(torch.isfinite(value) for value in losses.values())
    sum(model.loss([scenes.image(0)], [empty]).values()).backward()
