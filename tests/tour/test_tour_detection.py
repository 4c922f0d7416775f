"""Stage 6 of the quick tour: three detectors trained, drawn, compared."""

import shlex

import pytest

from cnnkit.cli.main import build_parser
from cnnkit.cli.train import given_options
from cnnkit.detection.task import DetectionConfig

pytestmark = pytest.mark.stage(6)
METHODS = ("rcnn", "fast_rcnn", "faster_rcnn")


def test_figures_are_real_pngs(section):
    names = {figure.path.name for figure in section.figures}
    assert names == {"6-detections.png", "6-proposals.png", "6-speed.png", "6-training.png"}
    for figure in section.figures:
        data = figure.path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 15_000, figure.path
        assert figure.caption


def test_every_detector_beats_chance(section):
    for method in METHODS:  # an untrained detector scores ~0.00; quick training reaches 0.25-0.8
        assert 0.1 < section.metrics[f"{method}_map50"] <= 1.0, method
        assert 0.0 < section.metrics[f"{method}_map"] < section.metrics[f"{method}_map50"], method


def test_time_and_proposals_follow_the_lecture(section):
    metrics = section.metrics
    search = metrics["selective_search_ms_per_image"]
    assert metrics["rcnn_ms_per_image"] > search and metrics["fast_rcnn_ms_per_image"] > search
    assert metrics["faster_rcnn_ms_per_image"] < metrics["rcnn_ms_per_image"]  # the RPN replaces selective search
    assert metrics["rcnn_proposals_per_image"] == metrics["fast_rcnn_proposals_per_image"] >= 4
    assert 1 <= metrics["faster_rcnn_proposals_per_image"] <= 100  # post-NMS top-n at test time


def test_table_compares_the_three(section):
    (table,) = section.tables
    assert [row[0] for row in table.rows] == ["R-CNN", "Fast R-CNN", "Faster R-CNN"]
    assert len(table.headers) == len(table.rows[0]) and "mAP@0.5" in table.headers


def test_text_weaves_in_the_numbers(section):
    text = " ".join(section.paragraphs)
    for word in ("selective search", "RoI pooling", "anchors", "region proposal network"):
        assert word in text
    assert f"{section.metrics['faster_rcnn_map50']:.2f}" in text


def test_commands_parse_and_chain_the_runs(section):
    parser = build_parser()
    parsed = [parser.parse_args(shlex.split(command)[1:]) for command in section.commands]
    trains = [DetectionConfig(**given_options(args, DetectionConfig)) for args in parsed if args.detect_command == "train"]
    assert [config.method for config in trains] == ["rcnn", "fast-rcnn", "faster-rcnn"]
    assert trains[0].init_from is None and trains[1].init_from and trains[2].init_from
    assert trains[0].schedule == "constant" and trains[0].batch_size == 1  # R-CNN fine-tunes an image at a time
    assert any(args.detect_command == "evaluate" for args in parsed)
