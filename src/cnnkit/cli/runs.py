"""Options shared by every command that trains into run folders or evaluates them (``train``,
``detect``, ``segment``, ``transfer``): the same words mean the same thing everywhere."""

from __future__ import annotations

from cnnkit.train.config import DEVICES


def add_train_options(parser, config_class, helps: dict | None = None, skip: tuple[str, ...] = ()) -> None:
    """``--resume RUN``, ``--format`` and one option per field of ``config_class`` (`add_config_options`):
    the engine's (``--runs-dir``, ``--name``, ``--device``, ``--amp``, ``--compile``, ``--threads``,
    ``--checkpoint-every-steps|seconds``, ``--patience``…) and the task's."""
    from cnnkit.cli.train import add_config_options

    parser.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint; "
                        "options given with it change the run where that keeps its numbers (--epochs, --lr, "
                        "--device…), others are refused")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="how to print the result (json: one object, no progress lines)")
    add_config_options(parser, config_class, helps, skip)


def add_device_option(parser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the model runs: auto (CUDA when available), cpu or cuda (default: %(default)s)")


def add_evaluate_command(commands, help: str, data_help: str, epilog: str, formatter, func) -> None:
    """The ``evaluate`` command: a run folder or checkpoint, on its own data or ``--data``."""
    parser = commands.add_parser("evaluate", help=help, description="Evaluate a run's best checkpoint.",
                                 epilog=epilog, formatter_class=formatter)
    parser.add_argument("run", metavar="RUN|CHECKPOINT", help="a run folder or its best.pt")
    parser.add_argument("--data", help=data_help)
    parser.add_argument("--images", help="image folder of a COCO --data")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test", help="(default: %(default)s)")
    parser.add_argument("--lenient", action="store_true", help="drop bad COCO annotations instead of failing")
    add_device_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=func)

