"""Stages 1-3 of the quick tour: the operation, a trained network, the architectures."""

import shlex

import pytest
from PIL import Image

from cnnkit.cli.main import build_parser


def assert_figures_and_commands(section, count):
    assert len(section.figures) == count
    for figure in section.figures:
        with Image.open(figure.path) as image:
            assert image.width >= 300 and image.height >= 200, figure.path
            assert len(image.convert("L").getcolors(maxcolors=1 << 16) or range(17)) > 16, f"{figure.path} is nearly blank"
    for command in section.commands:
        build_parser().parse_args(shlex.split(command)[1:])  # a real cnnkit command


@pytest.mark.stage(1)
def test_convolution_stage_measures_sizes_sparsity_and_equivariance(section):
    assert_figures_and_commands(section, 3)
    assert section.metrics["output_sizes_agree"]
    assert section.metrics["equivariance_error"] < 1e-5
    assert section.metrics["invariance_error"] < 1e-5
    assert section.metrics["odd_shift_error"] > 0.05  # stride 2 is not equivariant to a one-pixel shift
    assert section.metrics["matrix_nonzeros"] == 256  # a 3×3 kernel on 6×6 with padding 1: Σ_i taps inside = 16 per axis


@pytest.mark.stage(2)
def test_network_stage_trains_the_described_network_on_digits(section):
    assert_figures_and_commands(section, 3)
    assert section.metrics["parameters"] == 61706
    assert section.metrics["test_accuracy"] > 0.9


@pytest.mark.stage(3)
def test_architectures_stage_reports_the_published_sizes_and_depths(section):
    assert_figures_and_commands(section, 1)
    expected = {"alexnet": (61.1e6, 0.714e9, 8), "googlenet": (13.0e6, 1.50e9, 22), "resnet50": (25.6e6, 4.09e9, 50)}
    for name, (parameters, multiply_adds, layers) in expected.items():
        measured = section.metrics[name]
        assert measured["parameters"] == pytest.approx(parameters, rel=0.01)
        assert measured["multiply_adds"] == pytest.approx(multiply_adds, rel=0.01)
        assert measured["depth"] == layers
