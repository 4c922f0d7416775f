"""cnnkit stylize, in-process: defaults, options, snapshots, and one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

import cnnkit.style.samples
from cnnkit.cli.main import main
from cnnkit.data import read_image


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    content, style = tmp_path / "content.png", tmp_path / "style.jpg"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 256, (50, 20, 3), dtype=np.uint8)).save(style)
    return content, style


def test_without_images_uses_the_built_in_pair_and_says_weights_are_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cnnkit.style.samples, "SHARED_STYLE_IMAGES", tmp_path / "absent")
    assert main(["stylize", "--size", "32", "--steps", "2", "--scales", "1"]) == 0
    captured = capsys.readouterr()
    assert "sample:astronaut in the style of sample:immunohistochemistry" in captured.out
    assert captured.err.count("\n") == 1 and "vgg19-dcbb9e9d.pth" in captured.err and "--weights" in captured.err
    assert read_image(tmp_path / "stylized.png").shape == (3, 32, 32)


def test_files_options_snapshots_and_json(pair, tmp_path, capsys):
    content, style = pair
    out = tmp_path / "result" / "out.png"
    assert main(["stylize", str(content), str(style), "-o", str(out), "--size", "64", "--steps", "2", "--scales", "2",
                 "--preserve-color", "--pooling", "avg", "--tv-weight", "1", "--save-every", "1", "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["size"] == [48, 64] and record["steps"] == 4 and not record["pretrained"]
    assert len(record["snapshots"]) == 4 and all((tmp_path / "result" / p.split("/")[-1]).exists() for p in record["snapshots"])
    assert read_image(out).shape == (3, 48, 64)
    assert main(["stylize", str(content), str(style), "-o", str(out), "--size", "40", "--scales", "2"]) == 2
    assert "at least 16 px per side" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["stylize", "missing.jpg", "style.jpg"], "no such file"),
    (["stylize", "only-content.jpg"], "give both"),
    (["stylize", "--size", "8"], "at least 16"),
    (["stylize", "--scales", "9"], "fewer scales"),
])
def test_mistakes_are_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnkit stylize: error:") and message in err


def test_output_directory_and_foreign_weights_are_refused(pair, tmp_path, capsys):
    content, style = pair
    assert main(["stylize", str(content), str(style), "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    foreign = tmp_path / "not-weights.pth"
    foreign.write_text("hello")
    assert main(["stylize", str(content), str(style), "--weights", str(foreign), "--size", "32"]) == 2
    assert "not-weights.pth" in capsys.readouterr().err.splitlines()[-1]
    assert main(["stylize", "--help"]) == 0 and "vgg19-dcbb9e9d.pth" in capsys.readouterr().out
