"""`cnnkit models` and `cnnkit summary`, run in-process."""

import json

import pytest
import torch
import torchvision.models

from cnnkit.cli.main import main
from cnnkit.models import list_models
from cnnkit.nn import LENET_DESCRIPTION


def _run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _torchvision_parameters(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in getattr(torchvision.models, name)(weights=None).parameters())


def test_models_lists_every_architecture_with_its_parameter_count(capsys):
    status, out, err = _run(capsys, "models")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["Model", "Input", "Parameters", "Mult-adds"]
    assert [line.split()[0] for line in lines[1:]] == list_models()
    resnet18 = next(line for line in lines if line.startswith("resnet18 "))
    assert resnet18.split()[1:3] == ["3x224x224", f"{_torchvision_parameters('resnet18'):,}"]


def test_models_as_json(capsys):
    status, out, _ = _run(capsys, "models", "--format", "json")
    assert status == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) == set(list_models())
    assert rows["vgg16"]["parameters"] == _torchvision_parameters("vgg16")
    assert rows["lenet5"]["input_size"] == [1, 32, 32] and rows["lenet5"]["parameters"] == 61_706
    assert rows["resnet50"]["multiply_adds"] / 1e9 == pytest.approx(4.09, rel=0.02)


def test_summary_of_a_registered_model(capsys):
    status, out, err = _run(capsys, "summary", "resnet18")
    assert status == 0 and err == ""
    assert out.startswith("ResNet on input 3x224x224")
    assert f"Parameters: {_torchvision_parameters('resnet18'):,} " in out
    assert "layer4.1.conv2" in out


def test_summary_json_with_another_input(capsys):
    status, out, _ = _run(capsys, "summary", "resnet18", "--input", "1x64x64", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["input_size"] == [1, 64, 64]
    first = data["layers"][0]
    assert first["name"] == "conv1" and first["output_shape"] == [64, 32, 32] and first["trainable_params"] == 7 * 7 * 1 * 64
    assert data["total_params"] == sum(layer["trainable_params"] + layer["frozen_params"] for layer in data["layers"])


def test_summary_of_a_description_prints_it_back_canonically(capsys):
    status, out, _ = _run(capsys, "summary", "conv 5x5x6 s1 p0 tanh | pool avg 2 s2 | conv 5x5x16 tanh | pool avg 2 | fc 120 tanh | fc 84 tanh | fc 10")
    assert status == 0
    assert out.splitlines()[0] == f"Description: {LENET_DESCRIPTION}"
    assert "on input 1x32x32" in out and "Parameters: 61,706 " in out
    status, out, _ = _run(capsys, "summary", "conv 3x3x8 p1 relu | pool max 2 | fc 10", "--input", "3x16x16", "--format", "json")
    data = json.loads(out)
    assert data["description"] == "conv 3x3x8 p1 relu | pool max 2 | fc 10"
    assert data["total_params"] == 3 * 3 * 3 * 8 + 8 + 8 * 8 * 8 * 10 + 10


def test_summary_help_teaches_the_grammar(capsys):
    status, out, _ = _run(capsys, "summary", "--help")
    assert status == 0
    for text in ("conv KxKxN [sS] [pP] [bn] [ACT]", "pool max|avg|l2", "fc N", "dropout P", LENET_DESCRIPTION, "--input CxHxW"):
        assert text in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["summary", "resnet19"], "unknown model 'resnet19'; did you mean resnet18"),
        (["summary", "resnet18", "--input", "3x224"], "--input must be CxHxW"),
        (["summary", "resnet18", "--input", "3x0x224"], "--input must be CxHxW"),
        (["summary", "alexnet", "--input", "3x32x32"], "the forward pass failed in layer 'features."),
    ],
)
def test_bad_input_gives_one_line_and_status_2(capsys, argv, message):
    status, out, err = _run(capsys, *argv)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("cnnkit summary: error: ") and message in err


def test_description_error_shows_the_token_under_the_description(capsys):
    status, out, err = _run(capsys, "summary", "conv 5x5x6 tahn | fc 10")
    assert status == 2 and out == ""
    first, description, caret = err.splitlines()
    assert first.startswith("cnnkit summary: error: unknown conv option") and "'tahn' at column 12" in first
    assert description == "  conv 5x5x6 tahn | fc 10"
    assert caret == "  " + " " * 11 + "^^^^"


def test_unknown_option_is_a_usage_error(capsys):
    status, _, err = _run(capsys, "models", "--format", "yaml")
    assert status == 2 and "invalid choice" in err
