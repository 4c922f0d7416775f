"""Stage 5 (transfer learning) of the quick tour: the advisor's reading of both targets, every
strategy measured, figures and reproducing commands."""

import shlex

import pytest
from PIL import Image

from cnnkit.cli.main import build_parser
from cnnkit.tour.transfer import STRATEGIES
from cnnkit.transfer.strategies import STRATEGY_NAMES

pytestmark = pytest.mark.stage(5)


def test_figures_are_real_pictures(section):
    assert [figure.path.name for figure in section.figures] == ["5-targets.png", "5-probe.png", "5-strategies.png"]
    for figure in section.figures:
        with Image.open(figure.path) as image:
            assert 400 <= image.width <= 1100 and image.height >= 250
            assert len(image.convert("L").getcolors(1 << 16)) > 20  # not blank


def test_advisor_reads_the_size_and_picks_a_strategy_of_its_quadrant(section):
    metrics = section.metrics
    # parity: 1,257 training digits, about 620 per class; faces: 140 patches, 70 per class
    assert metrics["parity_quadrant"].startswith("large, ")
    assert metrics["faces_quadrant"].startswith("small, ")
    table = {"small, similar": "linear", "small, different": "intermediate",
             "large, similar": "finetune-top", "large, different": "finetune-all"}
    for key in ("parity", "faces"):
        assert metrics[f"{key}_advised"] == table[metrics[f"{key}_quadrant"]]
        assert set(metrics[f"{key}_probe"]) == {"pool1", "pool2", "head-input"}
    # the same images with a new question: the digit features at the top carry over
    assert metrics["parity_quadrant"] == "large, similar"
    assert metrics["parity_probe"]["head-input"] > 0.9


def test_every_strategy_is_measured_and_transfer_beats_chance(section):
    for key in ("parity", "faces"):
        scores = section.metrics[f"{key}_test_top1"]
        assert set(scores) == set(STRATEGIES)
        assert all(0.0 <= score <= 1.0 for score in scores.values())
        # two balanced classes: chance is 50 %; the digit features separate both tasks
        assert scores["linear"] > 0.85 and max(scores.values()) > 0.9
    rows = {row[0].split()[0]: row for row in section.tables[1].rows}
    assert set(rows) == {"linear", "intermediate", "finetune-top", "finetune-all", "from"}
    assert sum("← advised" in cell for row in rows.values() for cell in row[1:]) == 2


def test_text_reports_the_measured_numbers(section):
    text = " ".join(section.paragraphs)
    assert "The advisor on digit parity:" in text and "The advisor on faces:" in text
    parity = section.metrics["parity_test_top1"]
    assert f"{max(parity.values()):.1%}" in text


def test_commands_parse_and_name_real_strategies(section):
    parser = build_parser()
    assert len(section.commands) == 6
    for command in section.commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert args.command in ("transfer", "train")
        if args.command == "transfer" and getattr(args, "strategy", None):
            assert args.strategy in STRATEGY_NAMES
