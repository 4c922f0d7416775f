"""cnnkit visualize, in-process: every kind writes its figure; mistakes are one line and exit 2."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(path)
    return path


def test_no_options_draws_the_first_layer_of_the_default_network(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["visualize", "filters"]) == 0
    captured = capsys.readouterr()
    assert "wrote figures/filters.png" in captured.out and "(64, 3, 11, 11)" in captured.out
    assert captured.err.count("\n") == 1 and "random weights" in captured.err
    assert Image.open(tmp_path / "figures" / "filters.png").format == "PNG"


@pytest.mark.parametrize("kind, extra", [
    ("maps", ["--layer", "layer1", "--count", "4"]),
    ("deconv", ["--count", "2"]),
    ("deconv", ["--layer", "layer2.0.conv1", "--channel", "3"]),
    ("occlusion", ["--size", "8", "--stride", "8"]),
    ("gradcam", []),
    ("saliency", ["--target", "3"]),
])
def test_each_kind_on_an_image(kind, extra, photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["visualize", kind, "resnet20", str(photo), "-o", str(out), "--format", "json", *extra]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["figure"] == str(out / f"{kind}.png") and (out / f"{kind}.png").stat().st_size > 1000
    if kind == "occlusion":
        assert np.array(record["map"]).shape == (4, 4)  # ⌊(32 − 8)/8⌋ + 1
    if kind == "saliency":
        assert record["target"] == 3


def test_occlusion_fill_is_a_pixel_value_normalised_like_the_image(photo, tmp_path, capsys):
    """A black square (--fill 0) differs from the mean-grey one, and equals passing the
    normalised black to the library directly."""
    import torch

    from cnnkit import explain
    from cnnkit.cli.visualize import _image, _subject
    from cnnkit.cli.main import build_parser

    maps = {}
    for fill in ("mean", "0"):
        assert main(["visualize", "occlusion", "resnet20", str(photo), "-o", str(tmp_path), "--size", "8", "--stride", "8",
                     "--fill", fill, "--format", "json"]) == 0
        maps[fill] = np.array(json.loads(capsys.readouterr().out)["map"])
    assert not np.allclose(maps["mean"], maps["0"])
    args = build_parser().parse_args(["visualize", "occlusion", "resnet20", str(photo)])
    subject = _subject(args)
    picture, _ = _image(args, subject)
    black = subject.input(torch.zeros(1, 3, 1, 1))[0]
    direct = explain.occlusion_map(subject.model, subject.input(picture[None]), size=8, stride=8, fill=black)
    np.testing.assert_allclose(direct.probability.numpy(), maps["0"], atol=1e-6)
    assert main(["visualize", "occlusion", "resnet20", str(photo), "--fill", "2"]) == 2


def test_top_patches_on_a_folder_and_on_the_built_in_photos(tmp_path, photo, capsys):
    folder = tmp_path / "images" / "sub"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    assert main(["visualize", "top-patches", "resnet20", "--images", str(tmp_path / "images"), "--count", "3",
                 "--channel", "2", "-o", str(tmp_path), "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert len(record["patches"]) == 3 and record["layer"] == "layer2"
    assert main(["visualize", "top-patches", "resnet20", "--count", "2", "-o", str(tmp_path)]) == 0
    assert "views of the built-in photos" not in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["visualize", "maps", "resnet20", "missing.png"], "no such file"),
    (["visualize", "maps", "no_such_net"], "neither a model name"),
    (["visualize", "maps", "resnet20", "--layer", "layer9"], "has no layer"),
    (["visualize", "filters", "resnet20", "--weights", "missing.pth"], "missing.pth"),
    (["visualize", "deconv", "resnet20", "--channel", "999"], "out of range"),
    (["visualize", "gradcam", "resnet20", "--target", "10"], "out of range"),
])
def test_mistakes_are_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cnnkit visualize: error:") and message in err[-1]
    assert all("Traceback" not in line for line in err) and len(err) <= 2  # the random-weights note, then the error


def test_output_must_be_a_folder_and_options_are_checked(photo, tmp_path, capsys):
    assert main(["visualize", "maps", "resnet20", str(photo), "-o", str(photo)]) == 2
    assert "must be a directory" in capsys.readouterr().err
    assert main(["visualize", "maps", "--bogus"]) == 2
    assert main(["visualize", "--help"]) == 0 and "examples:" in capsys.readouterr().out
