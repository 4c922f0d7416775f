import shlex

import pytest

from cnnkit.cli.main import build_parser

pytestmark = pytest.mark.stage(8)


def test_figures_are_written(section):
    assert [f.path.name for f in section.figures] == ["8-result.png", "8-progress.png", "8-losses.png", "8-gram.png"]
    for figure in section.figures:
        assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert figure.path.stat().st_size > 10_000, f"{figure.path.name} looks empty"


def test_the_optimisation_moves_the_image_towards_the_style(section):
    metrics = section.metrics
    assert metrics["steps"] >= 10
    assert max(metrics["size"]) == 96
    assert metrics["style_loss"] < 0.1 * metrics["style_loss_first"]
    assert metrics["content_loss"] > 0  # it started from the photo and moved away
    assert metrics["gram_ratio_max"] < 1  # every layer's Gram matrix nearer the painting's than the photo's


def test_random_features_are_said_plainly(section):
    assert section.metrics["pretrained"] is False
    text = " ".join(section.paragraphs)
    assert "random" in text and "not a painting" in text and "vgg19-dcbb9e9d.pth" in text


def test_commands_parse(section):
    assert section.commands
    for command in section.commands:
        words = shlex.split(command)
        assert words[0] == "cnnkit"
        args = build_parser().parse_args(words[1:])
        assert args.size == 96
