"""train, evaluate, predict and export from the command line, in-process, on digits."""

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from cnnkit.cli.main import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One short run on digits shared by the tests (3 epochs: ~95 % test accuracy)."""
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--epochs", "3", "--runs-dir", str(runs), "--name", "digits", "--format", "json"]) == 0
    return runs / "digits"


def test_train_writes_a_complete_run_folder(run, capsys):
    for name in ("config.json", "metrics.jsonl", "best.pt", "last.pt", "report.md", "learning_curves.png", "confusion_test.png"):
        assert (run / name).exists(), name
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    report = json.loads((run / "report.json").read_text())
    assert report["test"]["top1"] > 0.85


def test_evaluate_prints_metrics_and_saves_the_confusion_matrix(run, capsys):
    assert main(["evaluate", str(run), "--format", "json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["count"] == 269 and metrics["top1"] > 0.85
    assert np.trace(np.array(metrics["confusion_matrix"])) == round(metrics["top1"] * 269)
    assert (run / "confusion_test.png").exists()
    assert main(["evaluate", str(run), "--split", "val"]) == 0
    assert "digits val: top-1" in capsys.readouterr().out


def test_predict_real_digit_images(run, tmp_path, capsys):
    digits = load_digits()
    paths = []
    for index in range(1700, 1720):  # images from the end of the set, scaled to 0-255 and enlarged
        path = tmp_path / f"digit{index}.png"
        Image.fromarray((digits.images[index] * 255 / 16).astype(np.uint8)).resize((48, 48)).save(path)
        paths.append(str(path))
    assert main(["predict", str(run), *paths, "--topk", "3", "--format", "json"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    for prediction in predictions:  # the three most probable of ten classes, most probable first
        assert len(prediction["classes"]) == 3 and sum(prediction["probabilities"]) <= 1 + 1e-5
        assert prediction["probabilities"] == sorted(prediction["probabilities"], reverse=True)
    correct = sum(p["classes"][0] == str(digits.target[i]) for p, i in zip(predictions, range(1700, 1720)))
    assert correct >= 15


def test_export_onnx_and_torchscript(run, tmp_path, capsys):
    assert main(["export", str(run), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["path"].endswith("model.onnx") and record["max_abs_difference"] <= 1e-4
    target = tmp_path / "model.pt"
    assert main(["export", str(run), "--format", "torchscript", "-o", str(target)]) == 0
    assert target.exists() and "matches PyTorch" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["predict", "no-such-run", "x.png"], "no-such-run"),
    (["evaluate", "no-such-run"], "no-such-run"),
    (["train", "--optimizer", "adam"], "optimizer must be one of"),
    (["train", "--data", "no-such-folder"], "no-such-folder"),
    (["export", "no-such-run"], "no-such-run"),
])
def test_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_predict_a_file_that_is_not_an_image(run, tmp_path, capsys):
    fake = tmp_path / "photo.jpg"
    fake.write_text("not a photo")
    assert main(["predict", str(run), str(fake)]) == 2
    assert "not an image" in capsys.readouterr().err
