"""Command ``tour``: the whole lecture on built-in data, written up as ``tour/index.html``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnkit.cli.output import print_result
from cnnkit.tour import STAGES, parse_stages, run_tour

EXAMPLES = """\
examples:
  cnnkit tour                          # all eight stages (under 10 minutes on 2 cores), then open tour/index.html
  cnnkit tour --quick                  # small sizes, under 2 minutes
  cnnkit tour --stages 1,2,4 -o mytour # some stages, in another folder
  cnnkit tour --stages 8 --weights vgg19-dcbb9e9d.pth   # painterly style transfer with ImageNet VGG-19

stages:
""" + "\n".join(f"  {stage.number}. {stage.title}" for stage in STAGES) + """

Every stage runs on data that ships with cnnkit (scikit-image photos, scikit-learn's digits,
generated shapes and digit scenes) and nothing is downloaded. A stage that fails is reported on
the page with its error, the others still run, and the command exits with status 1.
"""


def tour(args) -> int:
    stages = parse_stages(args.stages) if args.stages else None
    if args.weights is not None and not Path(args.weights).is_file():
        raise FileNotFoundError(f"{args.weights}: no such VGG-19 weights file")
    result = run_tour(args.output, stages=stages, quick=args.quick, seed=args.seed, vgg19_weights=args.weights)
    record = {
        "page": str(result.page),
        "seconds": round(result.seconds, 2),
        "stages": [{"number": s.number, "title": s.title, "status": s.status, "seconds": round(s.seconds, 2),
                    "error": s.error} for s in result.sections],
    }
    lines = [f"{s.number}. {s.title:<26}{s.seconds:7.1f} s  {s.status}{': ' + s.error if s.error else ''}"
             for s in result.sections]
    lines += [f"{'total':<29}{result.seconds:7.1f} s", f"wrote {result.page} (open it in a browser)"]
    print_result(args, record, lines)
    for section in result.failed:
        print(f"cnnkit tour: stage {section.number} ({section.title}) failed: {section.error}", file=sys.stderr)
    return 1 if result.failed else 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "tour", help="walk through the whole lecture on built-in data and write an illustrated report",
        description="Run each stage of the lecture (convolution, a trained network, the architectures, feature "
        "visualization, transfer learning, detection, segmentation, style transfer) on built-in data and write "
        "a self-contained page, OUTPUT/index.html, with figures, numbers and the command behind each stage.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", default="tour", metavar="DIR", help="folder for the page, figures and runs (default: %(default)s)")
    parser.add_argument("--stages", metavar="LIST", help="stages to run, such as 1,2,4 or 3-5 (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes and few steps: the whole tour in under 2 minutes")
    parser.add_argument("--weights", metavar="FILE", help="ImageNet VGG-19 weights (torchvision's vgg19-dcbb9e9d.pth) for stage 8")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random choice (default: %(default)s)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")
    parser.set_defaults(func=tour)
