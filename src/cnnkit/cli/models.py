"""Commands on networks: models, summary.

Both build networks on PyTorch's meta device: parameters and activations have shapes but no
memory and no initialisation, which is all a parameter count or a summary needs, so even
VGG-19's 144 million parameters are listed instantly.
"""

from __future__ import annotations

import argparse
import json

import torch

from cnnkit.models import create_model, list_models
from cnnkit.nn import GRAMMAR, build_network, describe, summarize


def add_commands(subparsers) -> None:
    models = subparsers.add_parser(
        "models",
        help="list the registered architectures",
        description="List the registered architectures with their default input size (CxHxW), "
        "parameter count and multiply-adds for one input of that size.",
    )
    models.add_argument("--format", choices=["table", "json"], default="table", help="output format (default: table)")
    models.set_defaults(func=list_architectures)

    summary = subparsers.add_parser(
        "summary",
        help="per-layer shapes, parameters, multiply-adds and receptive fields of a network",
        description="Summarize a registered model (see 'cnnkit models') or a network description:\n"
        "per layer its output shape, trainable and frozen parameters, multiply-adds and receptive\n"
        "field (RF) with its jump (input pixels between neighbouring outputs), then the totals.",
        epilog=f"{GRAMMAR}\n\nExamples:\n  cnnkit summary resnet18\n  cnnkit summary resnet18 --input 1x64x64 --format json\n"
        "  cnnkit summary 'conv 3x3x32 p1 bn relu | pool max 2 | conv 3x3x64 p1 relu | pool max 2 | fc 10' --input 3x32x32",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    summary.add_argument("network", metavar="MODEL|DESCRIPTION", help="a registered model name, or a network description (grammar below)")
    summary.add_argument(
        "--input",
        metavar="CxHxW",
        help="input channels, height and width, e.g. 3x224x224 (default: the model's own input size; 1x32x32 for a description)",
    )
    summary.add_argument("--format", choices=["table", "json"], default="table", help="output format (default: table)")
    summary.set_defaults(func=show_summary)


def list_architectures(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name)
        summary = summarize(model, model.default_input_size)
        rows.append({"name": name, "input_size": list(model.default_input_size), "parameters": summary.total_params, "multiply_adds": summary.multiply_adds})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    header = ("Model", "Input", "Parameters", "Mult-adds")
    cells = [(row["name"], "x".join(map(str, row["input_size"])), f"{row['parameters']:,}", f"{row['multiply_adds']:,}") for row in rows]
    widths = [max(len(line[column]) for line in [header, *cells]) for column in range(len(header))]
    for line in [header, *cells]:
        print("  ".join(cell.ljust(width) if column < 2 else cell.rjust(width) for column, (cell, width) in enumerate(zip(line, widths))))
    return 0


def show_summary(args: argparse.Namespace) -> int:
    input_size = _input_size(args.input) if args.input else None
    description = None
    with torch.device("meta"):
        if len(args.network.split()) == 1:  # a name: every description stage has a keyword and a size
            try:
                model = create_model(args.network, in_channels=input_size[0] if input_size else None)
            except ValueError as error:
                raise ValueError(f"{error} (or write a network description: see 'cnnkit summary --help')") from None
        else:
            size = {"in_channels": input_size[0], "input_size": input_size[1:]} if input_size else {}
            model = build_network(args.network, **size)
            description = describe(model)
    summary = summarize(model, input_size or model.default_input_size)
    if args.format == "json":
        print(json.dumps({"description": description, **summary.to_dict()} if description else summary.to_dict(), indent=2))
        return 0
    if description:
        print(f"Description: {description}")
    print(summary.table())
    return 0


def _input_size(text: str) -> tuple[int, int, int]:
    """'3x224x224' → (3, 224, 224); ``ValueError`` for anything else."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"--input must be CxHxW with positive integers, e.g. 3x224x224; got {text!r}")
    return tuple(int(part) for part in parts)
