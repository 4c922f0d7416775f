import shlex

import pytest

from cnnkit.cli.main import build_parser

pytestmark = pytest.mark.stage(4)


def test_figures_are_written(section):
    names = [f.path.name for f in section.figures]
    assert names == ["4-filters.png", "4-maps.png", "4-deconv.png", "4-top-patches.png", "4-occlusion.png"]
    for figure in section.figures:
        assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert figure.path.stat().st_size > 10_000, f"{figure.path.name} looks empty"


def test_deconvnet_projections_stay_in_the_receptive_field(section):
    # a pool2 unit of sample_net sees 18×18 pixels; a projection reaching further is not a deconvnet's
    assert 5 <= section.metrics["deconv_support"] <= 18


def test_occlusion_finds_the_strokes(section):
    metrics = section.metrics
    assert metrics["occlusion_baseline"] > 0.8  # the trained network is confident on these test digits
    assert metrics["occlusion_black_drop"] > 0.5  # erasing the right 7×7 patch changes the answer
    assert metrics["occlusion_black_on_ink"] > 0.4  # and that patch is on the strokes (ink is ~27 % of pixels)
    assert 0 <= metrics["gradcam_on_ink"] <= 1


def test_top_patches_come_mostly_from_one_class(section):
    assert section.metrics["top_patch_purity"] >= 0.5
    assert 0 <= section.metrics["top_patch_channel"] < 16


def test_kernel_census_covers_all_six_kernels(section):
    metrics = section.metrics
    assert metrics["kernels_edge_like"] + metrics["kernels_dark"] + metrics["kernels_bright"] == 6


def test_commands_parse_and_use_written_files(section, quick_tour):
    root = quick_tour.page.parent
    assert len(section.commands) == 6
    for command in section.commands:
        words = shlex.split(command)
        assert words[:2] == ["cnnkit", "visualize"]
        args = build_parser().parse_args(words[1:])
        assert (root / args.model).is_dir()
        if getattr(args, "image", None):
            assert (root / args.image).is_file()
