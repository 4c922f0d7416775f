"""cnnkit segment train | evaluate | predict, in-process, on a few digit scenes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.cli.main import main
from cnnkit.data.images import save_image
from cnnkit.data.masks import digit_scene_segmentation

SMALL = ["--epochs", "1", "--train-images", "8", "--val-images", "2", "--test-images", "2", "--batch-size", "4",
         "--threads", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["segment", "train", *SMALL, "--runs-dir", str(runs), "--name", "tiny", "--device", "cpu",
                 "--format", "json"]) == 0
    return runs / "tiny"


def test_train_writes_a_run_folder(run):
    for name in ("config.json", "metrics.jsonl", "best.pt", "last.pt", "report.json", "report.md"):
        assert (run / name).is_file()
    report = json.loads((run / "report.json").read_text())
    assert {"mean_iou", "pixel_accuracy", "mean_class_accuracy", "seconds_per_image", "images"} <= set(report["test"])
    assert len(report["confusion_matrix"]) == 11 and len(report["iou"]) == 11 and report["task"] == "segmentation"
    assert report["data"]["sizes"] == {"train": 8, "val": 2, "test": 2} and "files" not in report["data"]  # generated
    assert "val_mean_iou" in json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "## Test IoU per class" in (run / "report.md").read_text()


def test_sliding_method_trains_too(tmp_path, capsys):
    argv = ["segment", "train", "--method", "sliding", *SMALL, "--runs-dir", str(tmp_path), "--format", "json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["test"]["pixel_accuracy"] <= 1 and (tmp_path / "sliding-digit-scenes" / "best.pt").is_file()
    assert json.loads((tmp_path / "sliding-digit-scenes" / "config.json").read_text())["method"] == "sliding"


def test_evaluate_gives_the_reported_test_figures(run, capsys):
    assert main(["segment", "evaluate", str(run), "--device", "cpu", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    report = json.loads((run / "report.json").read_text())
    assert result["mean_iou"] == report["test"]["mean_iou"] and result["confusion"] == report["confusion_matrix"]
    assert len(result["iou"]) == 11 and result["images"] == 2


def test_resume_refuses_an_option_that_changes_the_run(run, capsys):
    assert main(["segment", "train", "--resume", str(run), "--variant", "32s"]) == 2
    assert "--variant cannot change when resuming" in capsys.readouterr().err


def test_predict_writes_overlay_with_legend_and_index_mask(run, tmp_path, capsys):
    image = tmp_path / "scene.png"
    save_image(digit_scene_segmentation("test", 1).image(0), image)
    out = tmp_path / "out"
    assert main(["segment", "predict", str(run), str(image), "-o", str(out), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert json.loads((out / "predictions.json").read_text()) == records
    overlay = Image.open(out / "scene_overlay.png")
    assert overlay.size[1] == 64 and overlay.size[0] > 64  # the legend to the right
    mask = Image.open(out / "scene_mask.png")
    assert mask.mode == "P" and mask.size == (64, 64) and np.asarray(mask).max() <= 10
    assert sum(records[0]["classes"].values()) == pytest.approx(1.0, abs=1e-3)


def test_predict_with_torchvision_fcn_resnet50_weights(tmp_path, capsys):
    from torchvision.models.segmentation import fcn_resnet50

    torch.manual_seed(0)
    weights = tmp_path / "fcn_resnet50.pth"
    torch.save(fcn_resnet50(weights=None, weights_backbone=None, num_classes=21).state_dict(), weights)
    image = tmp_path / "photo.png"
    save_image(torch.rand(3, 40, 48), image)
    assert main(["segment", "predict", str(weights), str(image), "-o", str(tmp_path / "out")]) == 0
    assert "photo.png:" in capsys.readouterr().out and (tmp_path / "out" / "photo_mask.png").is_file()


@pytest.mark.parametrize("argv", [
    ["segment", "predict", "missing-run", "x.png"],
    ["segment", "evaluate", "missing-run"],
    ["segment", "train", "--data", "missing-folder"],
    ["segment", "train", "--no-such-option"],
    ["segment", "train", "--method", "mask-rcnn", "--data", "camvid"],
    ["segment", "train", "--method", "mask-rcnn", "--patch-size", "9"],
    ["segment", "train", "--variant", "64s"],
    ["segment", "train", "--resume", "missing-run"],
])
def test_bad_input_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err


def test_a_directory_instead_of_an_image(run, tmp_path, capsys):
    assert main(["segment", "predict", str(run), str(tmp_path)]) == 2
    assert "no such image file" in capsys.readouterr().err


def test_a_text_file_instead_of_weights(tmp_path, capsys):
    weights = tmp_path / "weights.pth"
    weights.write_text("not weights")
    image = tmp_path / "x.png"
    save_image(torch.rand(3, 8, 8), image)
    assert main(["segment", "predict", str(weights), str(image)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_mask_rcnn_trains_evaluates_and_predicts_instances(tmp_path, capsys):
    argv = ["segment", "train", "--method", "mask-rcnn", *SMALL, "--runs-dir", str(tmp_path), "--name", "mr",
            "--format", "json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"mask_map", "mask_map50", "box_map", "seconds_per_image"} <= set(result["test"])
    assert main(["segment", "evaluate", str(tmp_path / "mr"), "--device", "cpu", "--format", "json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["mask_map"] <= 1
    assert main(["segment", "train", "--resume", str(tmp_path / "mr"), "--epochs", "2", "--format", "json"]) == 0
    assert "mask_map" in json.loads(capsys.readouterr().out)["test"]  # resumed as the Mask R-CNN run it is
    assert torch.load(tmp_path / "mr" / "last.pt", weights_only=True)["epoch"] == 2
    image = tmp_path / "scene.png"
    from cnnkit.data.scenes import digit_scenes

    save_image(digit_scenes("test", 1).image(0), image)
    out = tmp_path / "out"
    assert main(["segment", "predict", str(tmp_path / "mr"), str(image), "-o", str(out), "--score", "0",
                 "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert (out / "scene_instances.png").is_file() and json.loads((out / "instances.json").read_text()) == records
    for record in records:
        assert record["segmentation"]["size"] == [128, 128] and isinstance(record["segmentation"]["counts"], str)


def test_predict_with_torchvision_maskrcnn_weights(tmp_path, capsys):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    weights = tmp_path / "maskrcnn_resnet50_fpn.pth"
    torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5).state_dict(), weights)
    image = tmp_path / "photo.png"
    save_image(torch.rand(3, 64, 80), image)
    out = tmp_path / "out"
    assert main(["segment", "predict", str(weights), str(image), "-o", str(out), "--score", "0", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert (out / "photo_instances.png").is_file() and records
    assert all(record["segmentation"]["size"] == [64, 80] for record in records)


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_DATA / "coco128").is_dir(), reason="../shared/data/coco128 absent")
def test_mask_rcnn_on_coco128_polygons_and_rle(tmp_path, capsys):
    annotations = SHARED_DATA / "coco128" / "annotations" / "instances_train2017.json"
    argv = ["segment", "train", "--method", "mask-rcnn", "--data", str(annotations), "--lenient", "--epochs", "1",
            "--train-images", "4", "--batch-size", "2", "--threads", "1", "--runs-dir", str(tmp_path), "--name", "coco",
            "--format", "json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test"]["images"] == 12 and 0 <= result["test"]["mask_map"] <= 1
