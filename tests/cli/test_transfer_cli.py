"""cnnkit transfer and cnnkit transfer advise, in-process, on built-in data and a saved ResNet-20."""

import json

import pytest
import torch

from cnnkit.cli.main import main
from cnnkit.data import load_dataset
from cnnkit.models import create_model
from cnnkit.models.weights import save_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A ResNet-20 (random filters) saved as safetensors with shapes' normalisation."""
    torch.manual_seed(0)
    shapes = load_dataset("shapes")
    path = tmp_path_factory.mktemp("weights") / "resnet20.safetensors"
    save_weights(create_model("resnet20", num_classes=3), path, {"mean": shapes.mean, "std": shapes.std})
    return str(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


def run(capsys, *argv):
    status = main(["transfer", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_advise_prints_quadrant_measurements_and_json(weights, folders, capsys):
    status, out, _ = run(capsys, "advise", "--from", weights, "--data", "faces", "--cache", str(folders / "cache"))
    assert status == 0 and "quadrant: small, " in out and "linear probe, validation top-1: layer1" in out
    status, out, _ = run(capsys, "advise", "--from", weights, "--data", "faces", "--cache", str(folders / "cache"),
                         "--format", "json")
    advice = json.loads(out)
    assert status == 0 and advice["size"] == "small" and advice["measurements"]["examples_per_class"]["min"] == 70
    assert advice["strategy"] in ("linear", "intermediate") and advice["explanation"].startswith("faces has 70")
    assert any("resized from 25×25" in note for note in advice["measurements"]["adaptations"])


def test_linear_writes_a_run_that_predict_and_evaluate_read(weights, folders, capsys):
    status, out, _ = run(capsys, "--from", weights, "--data", "faces", "--strategy", "linear", "--runs-dir",
                         str(folders / "runs"), "--name", "linear", "--no-cache", "--format", "json")
    result = json.loads(out)
    run_dir = folders / "runs" / "linear"
    assert status == 0 and result["strategy"] == "linear" and result["layer"] == "head-input"
    for name in ("config.json", "transfer.json", "report.json", "report.md", "best.pt", "confusion_test.png"):
        assert (run_dir / name).exists(), name
    assert main(["evaluate", str(run_dir), "--format", "json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["top1"] == pytest.approx(result["test"]["top1"])


def test_intermediate_layer_and_finetune_top(weights, folders, capsys):
    status, out, _ = run(capsys, "--from", weights, "--data", "faces", "--strategy", "intermediate", "--layer", "layer2",
                         "--runs-dir", str(folders / "runs"), "--cache", str(folders / "cache"))
    assert status == 0 and "intermediate on layer2: test top-1" in out
    status, out, _ = run(capsys, "--from", weights, "--data", "faces", "--strategy", "finetune-top", "--epochs", "1",
                         "--runs-dir", str(folders / "runs"), "--name", "top", "--format", "json")
    result = json.loads(out)
    assert status == 0 and result["strategy"] == "finetune-top"
    settings = json.loads((folders / "runs" / "top" / "transfer.json").read_text())
    assert settings["top_blocks"] == 3 and settings["pretrained_lr_scale"] == 0.1
    assert (folders / "runs" / "top" / "best.pt").exists()
    status, out, _ = run(capsys, "--resume", str(folders / "runs" / "top"), "--format", "json")
    assert status == 0 and json.loads(out)["test"]["top1"] == pytest.approx(result["test"]["top1"])


@pytest.mark.parametrize("argv, message", [
    (["--data", "faces"], "needs --from"),
    (["--from", "missing.pth", "--data", "faces"], "not found: missing.pth"),
    (["--from", "WEIGHTS", "--data", "faces", "--layer", "layer7"], "no layer 'layer7'; its stages are layer1"),
    (["--from", "WEIGHTS", "--data", "faces", "--model", "resnet32"], "does not fit architecture 'resnet32'"),
    (["--from", "WEIGHTS", "--data", "ONECLASS"], "a classifier needs at least two classes"),
    (["--from", "FOLDER", "--data", "faces"], "not a cnnkit run"),
    (["--from", "WEIGHTS", "--data", "faces", "--strategy", "finetune-all", "--layer", "layer2"],
     "applies to the linear and intermediate strategies, not finetune-all"),
])
def test_bad_input_is_one_line_and_status_2(weights, folders, capsys, argv, message):
    one_class = folders / "one-class" / "cats"
    one_class.mkdir(parents=True, exist_ok=True)
    from cnnkit.data import save_image

    for i in range(4):
        save_image(torch.rand(3, 8, 8), one_class / f"{i}.png")
    replace = {"WEIGHTS": weights, "ONECLASS": str(folders / "one-class"), "FOLDER": str(folders)}
    status, out, err = run(capsys, *[replace.get(a, a) for a in argv], "--no-cache")
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
