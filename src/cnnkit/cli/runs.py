"""Options shared by the commands that train into run folders and evaluate them (``detect`` and
``segment``): the same words mean the same thing in both."""

from __future__ import annotations


def add_run_folder_options(parser, runs_default: str) -> None:
    """``--lenient``, ``--runs``, ``--name`` and ``--format`` of a ``train`` command."""
    parser.add_argument("--lenient", action="store_true", help="drop bad COCO annotations and list them instead of failing")
    parser.add_argument("--runs", default=runs_default, help="folder of run folders (default: %(default)s)")
    parser.add_argument("--name", help="run folder name (default: METHOD-DATA)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def add_evaluate_command(commands, help: str, data_help: str, epilog: str, formatter, func) -> None:
    """The ``evaluate`` command: a run folder or checkpoint, on its own data or ``--data``."""
    parser = commands.add_parser("evaluate", help=help, description="Evaluate a run's best checkpoint.",
                                 epilog=epilog, formatter_class=formatter)
    parser.add_argument("run", metavar="RUN|CHECKPOINT", help="a run folder or its best.pt")
    parser.add_argument("--data", help=data_help)
    parser.add_argument("--images", help="image folder of a COCO --data")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test", help="(default: %(default)s)")
    parser.add_argument("--lenient", action="store_true", help="drop bad COCO annotations instead of failing")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=func)
