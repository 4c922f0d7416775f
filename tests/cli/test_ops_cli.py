"""The convolve, pool and shape commands, in-process, as a newcomer and a script would use them."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnkit import __version__
from cnnkit.cli.main import main
from cnnkit.data import read_image


@pytest.fixture
def photo(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(array).save(path)
    return path


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    for command in ("convolve", "pool", "shape"):
        assert main([command, "--help"]) == 0
        assert "examples:" in capsys.readouterr().out


def test_convolve_with_no_options_uses_the_built_in_photo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["convolve"]) == 0
    assert "sample:camera" in capsys.readouterr().out
    output = read_image(tmp_path / "convolved.png")
    assert output.shape == (1, 512, 512)
    assert abs(float(output.mean()) - 0.5) < 0.05  # a derivative: mostly mid-grey around zero


def test_convolve_file_with_stride_valid_padding_figure_and_json(photo, tmp_path, capsys):
    out, figure = tmp_path / "edges.png", tmp_path / "steps.png"
    code = main([
        "convolve", str(photo), "--kernel", "1,0,-1;2,0,-2;1,0,-1", "--stride", "2", "--padding", "valid",
        "-o", str(out), "--show-steps", str(figure), "--format", "json",
    ])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["input_shape"] == [3, 40, 30] and record["output_shape"] == [3, 19, 14]  # ⌊(40−3)/2⌋+1
    assert read_image(out).shape == (3, 19, 14)
    assert Image.open(figure).size[0] > 600


def test_gaussian_blur_keeps_brightness(photo, tmp_path):
    out = tmp_path / "blur.png"
    assert main(["convolve", str(photo), "--kernel", "gaussian", "--sigma", "2", "--mode", "reflect", "-o", str(out)]) == 0
    assert abs(float(read_image(out).mean()) - float(read_image(photo).mean())) < 0.01


@pytest.mark.parametrize("kind", ["max", "avg", "l2"])
def test_pool(photo, tmp_path, capsys, kind):
    out = tmp_path / f"{kind}.png"
    assert main(["pool", str(photo), "--kind", kind, "--size", "3", "--stride", "2", "--padding", "1", "-o", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["output_shape"] == [3, 20, 15]
    pooled, original = read_image(out), read_image(photo)
    if kind == "max":
        assert float(pooled.mean()) > float(original.mean())


def test_shape_default_is_lenet_and_json(capsys):
    assert main(["shape"]) == 0
    text = capsys.readouterr().out
    assert "conv3" in text and "1×1" in text and "32×32" in text
    assert main(["shape", "--input", "224x200", "conv1:7,2,3", "pool:3x3,2,1", "3,1,same,2", "--format", "json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [layer["output"] for layer in layers] == [[112, 100], [56, 50], [56, 50]]
    assert layers[-1]["receptive_field"] == [27, 27]


@pytest.mark.parametrize("argv,message", [
    (["convolve", "missing.png"], "missing.png: no such file"),
    (["convolve", "."], "is a directory"),
    (["convolve", "--kernel", "blurry"], "neither a name"),
    (["convolve", "--padding", "half"], "padding must be"),
    (["pool", "--size", "9", "--padding", "5"], "more than half the window"),
    (["shape", "--input", "8", "5", "5"], "layer 2: kernel 5"),
    (["shape", "--input", "8", "5,x"], "'5,x'"),
    (["shape", "--input", "0"], "positive integers"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error


def test_not_an_image_and_unknown_option(tmp_path, capsys):
    fake = tmp_path / "notes.jpg"
    fake.write_text("hello")
    assert main(["pool", str(fake)]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["pool", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
