"""Entry point of the ``cnnkit`` command.

Each command group lives in its own module with an ``add_commands(subparsers)`` function that
registers its subcommands and sets ``func`` to a handler ``handler(args) -> int``. Handlers only
parse, call the library and print. Any ``ValueError`` or ``OSError`` a handler lets through
becomes one line on stderr and exit status 2 (bad input); a ``RuntimeError`` (a run that failed,
such as a non-finite loss or a download without network) one line and exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from cnnkit import __version__
from cnnkit.cli import detect as detect_commands
from cnnkit.cli import models as models_commands
from cnnkit.cli import ops as ops_commands
from cnnkit.cli import segment as segment_commands
from cnnkit.cli import style as style_commands
from cnnkit.cli import tour as tour_commands
from cnnkit.cli import train as train_commands
from cnnkit.cli import transfer as transfer_commands
from cnnkit.cli import visualize as visualize_commands

COMMAND_GROUPS = [
    ops_commands, models_commands, train_commands, transfer_commands, detect_commands, segment_commands,
    visualize_commands, style_commands, tour_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnkit",
        description="Convolutional neural networks from the convolution sum to Mask R-CNN. "
        "Run 'cnnkit COMMAND --help' for what each command does and its options.",
    )
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version and usage errors
        return int(exit_request.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, OSError) as error:
        print(f"cnnkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # a failed run (non-finite loss, download): the run folder keeps what was good
        print(f"cnnkit {args.command}: failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnnkit {args.command}: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
