import shlex

import pytest
import torch
from PIL import Image

from cnnkit.cli.main import build_parser
from cnnkit.detection.structures import Detections
from cnnkit.tour.segmentation import instance_scenes, mean_mask_iou

pytestmark = pytest.mark.stage(7)


def test_figures_are_real_pictures(section):
    names = [figure.path.name for figure in section.figures]
    assert names == ["7-fcn-predictions.png", "7-fcn-iou.png", "7-instances.png"]
    for figure in section.figures:
        with Image.open(figure.path) as picture:
            assert 400 <= picture.width <= 1000 and picture.height >= 300
            colours = picture.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 50  # not a blank canvas


def test_fcn_beats_calling_everything_background(section):
    metrics = section.metrics
    assert 0.05 < metrics["fcn_chance_mean_iou"] < 0.1  # 11 classes, background ~0.9 of the pixels
    assert metrics["fcn_mean_iou"] > 1.3 * metrics["fcn_chance_mean_iou"]
    assert metrics["fcn_background_iou"] > 0.9
    iou_table = section.tables[0]
    assert [row[0] for row in iou_table.rows] == ["background", *map(str, range(10)), "mean"]


def test_mask_rcnn_finds_the_digits(section):
    metrics = section.metrics
    assert metrics["box_ap50"] > 0.2
    assert metrics["mask_ap50"] > 0.05
    assert 0.2 < metrics["mean_mask_iou"] <= 1
    assert 0 <= metrics["mask_ap"] <= metrics["mask_ap50"]


def test_commands_parse(section):
    parser = build_parser()
    assert len(section.commands) == 4
    for command in section.commands:
        words = shlex.split(command)
        assert words[:2] == ["cnnkit", "segment"]
        parser.parse_args(words[1:])


def test_text_quotes_the_measured_numbers(section):
    text = " ".join(section.paragraphs)
    assert f"{section.metrics['fcn_mean_iou']:.3f}" in text
    assert f"{section.metrics['mean_mask_iou']:.3f}" in text


def _detections(masks):
    return Detections(torch.zeros(len(masks), 4), torch.ones(len(masks)), torch.ones(len(masks), dtype=torch.int64),
                      masks=masks.float())


def test_mean_mask_iou_counts_overlap_per_true_instance():
    scenes = instance_scenes("test", 3, seed=0)
    truths = [t["masks"] for t in scenes.targets]  # (G, 64, 64) each
    assert mean_mask_iou(scenes, [_detections(m) for m in truths]) == pytest.approx(1.0)
    assert mean_mask_iou(scenes, [_detections(m[:0]) for m in truths]) == 0.0
    halves, expected = [], []
    for masks in truths:
        half = torch.zeros_like(masks)
        for index, mask in enumerate(masks):
            pixels = mask.flatten().nonzero()[:, 0]
            half[index].view(-1)[pixels[: len(pixels) // 2]] = True
            expected.append((len(pixels) // 2) / len(pixels))
        halves.append(half)
    assert mean_mask_iou(scenes, [_detections(m) for m in halves]) == pytest.approx(sum(expected) / len(expected))
