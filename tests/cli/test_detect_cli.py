"""cnnkit detect train | evaluate | predict, in-process, on a few digit scenes."""

import json

import pytest

from cnnkit.cli.main import main
from cnnkit.data.images import save_image
from cnnkit.data.scenes import digit_scenes

SMALL = ["--epochs", "1", "--train-images", "8", "--val-images", "4", "--test-images", "4", "--batch-size", "4", "--pretrain-steps", "3",
         "--threads", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["detect", "train", *SMALL, "--runs-dir", str(runs), "--name", "tiny", "--device", "cpu"]) == 0
    return runs / "tiny"


def test_train_writes_a_run_folder(run, capsys):
    for name in ("config.json", "metrics.jsonl", "best.pt", "last.pt", "report.json", "report.md"):
        assert (run / name).is_file()
    report = json.loads((run / "report.json").read_text())
    assert {"map", "map50", "map75", "map_small", "voc_map50", "seconds_per_image", "loss"} <= set(report["test"])
    assert len(report["voc_ap50"]) == 10 and report["epochs"] == 1 and report["steps"] == 2
    assert report["data"]["sizes"] == {"train": 8, "val": 4, "test": 4}
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert {"val_map", "val_loss", "train_loss", "train_loss_objectness", "train_loss_classifier"} <= set(record)


def test_train_starts_from_another_run_and_prints_json(run, tmp_path, capsys):
    argv = ["detect", "train", *SMALL, "--runs-dir", str(tmp_path), "--name", "next", "--init-from", str(run)]
    assert main([*argv, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run"] == str(tmp_path / "next") and 0 <= printed["test"]["map"] <= 1
    assert main([*argv[:-4], "--name", "again", "--init-from", str(run)]) == 0
    captured = capsys.readouterr()
    assert "initialised from" in captured.err and "pre-trained" not in captured.err
    assert "test mAP" in captured.out and "run folder" in captured.out


def test_a_taken_name_is_refused(run, capsys):
    assert main(["detect", "train", *SMALL, "--runs-dir", str(run.parent), "--name", "tiny"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_evaluate_prints_coco_and_voc_figures(run, capsys):
    assert main(["detect", "evaluate", str(run), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["map"] <= 1 and len(result["voc_ap50"]) == 10 and result["images"] == 4


def test_predict_draws_boxes_and_writes_coco_json(run, tmp_path, capsys):
    image = tmp_path / "scene.png"
    save_image(digit_scenes("test", count=1).image(0), image)
    out = tmp_path / "out"
    assert main(["detect", "predict", str(run), str(image), "-o", str(out), "--score", "0.0", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert (out / "scene.png").is_file() and json.loads((out / "detections.json").read_text()) == records
    for record in records:
        assert {"image_id", "category_id", "bbox", "score"} <= set(record) and len(record["bbox"]) == 4


@pytest.mark.parametrize("argv", [
    ["detect", "predict", "missing-run", "x.png"],
    ["detect", "evaluate", "missing-run"],
    ["detect", "train", "--data", "missing.json"],
    ["detect", "train", "--no-such-option"],
    ["detect", "train", "--method", "yolo"],
])
def test_bad_input_is_one_line_and_exit_2(argv, capsys, tmp_path):
    assert main([*argv, "--runs-dir", str(tmp_path)] if argv[1] == "train" else argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err


def test_a_directory_instead_of_an_image(run, tmp_path, capsys):
    assert main(["detect", "predict", str(run), str(tmp_path)]) == 2
    assert "no such image file" in capsys.readouterr().err
