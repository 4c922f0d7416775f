"""Commands on training: ``train``, ``evaluate``, ``predict`` and ``export``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from pathlib import Path

from cnnkit.cli.output import print_result
from cnnkit.cli.runs import add_device_option, add_train_options
from cnnkit.data import load_dataset
from cnnkit.models.export import EXPORT_FORMATS, export_model
from cnnkit.inference import open_model
from cnnkit.train import TrainConfig, evaluate, resume, train
from cnnkit.train.distributed import resolve_device
from cnnkit.train.figures import confusion_matrix_figure, learning_curves_figure
from cnnkit.train.predict import predict

TRAIN_EXAMPLES = """\
examples:
  cnnkit train                                     # the lecture's sample network on digits, < 1 minute
  cnnkit train --model lenet5 --data shapes --epochs 20
  cnnkit train --model resnet20 --data cifar10 --data-root ~/data/cifar10 --epochs 164 \\
      --lr 0.1 --batch-size 128 --weight-decay 1e-4 --schedule step --augmentation crop-flip
  cnnkit train --data photos/ --model resnet18 --image-size 128 --weights resnet18-f37072fd.pth
  cnnkit train --resume runs/sample_net-digits    # continue a run exactly where it stopped

A run folder runs/NAME/ keeps config.json, metrics.jsonl (one line per epoch), the last and best
checkpoints, report.md/report.json, learning_curves.png and confusion_test.png. --data is a
built-in (digits, faces, shapes), a format read from --data-root (mnist, fashion-mnist, cifar10,
cifar100), a folder with one sub-folder per class, or a CSV of path,label rows. Every field of
cnnkit.train.TrainConfig is an option below; its docstring explains each.
"""

EVALUATE_EXAMPLES = """\
examples:
  cnnkit evaluate runs/sample_net-digits            # test split of the data it was trained on
  cnnkit evaluate runs/my-run --data photos-2026/ --split test --format json
"""

PREDICT_EXAMPLES = """\
examples:
  cnnkit predict runs/sample_net-digits digit.png
  cnnkit predict runs/my-run/best.pt *.jpg --topk 3 --format json
Probabilities are the softmax of the logits; the model runs with batch norm folded into the
convolutions, channels_last, without autograd.
"""

EXPORT_EXAMPLES = """\
examples:
  cnnkit export runs/sample_net-digits                        # runs/sample_net-digits/model.onnx
  cnnkit export runs/my-run --format torchscript -o model.pt
  cnnkit export runs/my-run --format safetensors -o weights.safetensors
Every export is loaded back (ONNX in onnxruntime) and must reproduce the PyTorch outputs within
1e-4 before the command reports success.
"""


def _field_type(annotation) -> tuple[type, bool]:
    """(element type, is a list) of a config field annotation such as ``int | None``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


RUN_HELPS = {
    "epochs": "passes over the training images", "batch_size": "images per step", "lr": "peak learning rate",
    "seed": "seed of data, splits and initialisation",
    "threads": "torch threads (1 is often fastest on a busy shared CPU)", "runs_dir": "folder of run folders",
    "name": "run folder name; without one a name from the model and data (then -2, -3…)",
    "patience": "stop after this many epochs without a better validation figure; 0: never",
}
"""The help of the engine's fields (`RunConfig`) on every train command; a task's own may override."""


def add_config_options(parser: argparse.ArgumentParser, config_class=TrainConfig, helps: dict | None = None,
                       skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` option per field of ``config_class`` (a `RunConfig`), typed, with
    its help from ``helps`` (over `RUN_HELPS`) and the field's default. Options left out parse
    as None, so that `given_options` can tell them from options given (what ``--resume`` may
    change)."""
    hints = typing.get_type_hints(config_class)
    helps = {**RUN_HELPS, **(helps or {})}
    group = parser.add_argument_group(f"training configuration ({config_class.__module__}.{config_class.__name__})")
    for field in dataclasses.fields(config_class):
        if field.name in skip:
            continue
        kind, is_list = _field_type(hints[field.name])
        flag = "--" + field.name.replace("_", "-")
        text = (helps.get(field.name, "") + f" (default: {field.default})").strip()
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(flag, type=kind, nargs="+" if is_list else None, default=None,
                               metavar=field.name.upper(), help=text)


def given_options(args, config_class) -> dict:
    """The fields of ``config_class`` given on the command line (not None)."""
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)
            if getattr(args, field.name, None) is not None}


def train_or_resume(args, config_class, task=None, progress: bool | None = None, log=None):
    """`train` a config of the options given, or `resume` ``--resume RUN`` with them as changes."""
    values = given_options(args, config_class)
    progress = progress if progress is not None else (None if args.format == "text" else False)
    if args.resume:
        return resume(args.resume, task=task or config_class().task(), changes=values, progress=progress, log=log)
    return train(config_class(**values), task=task, progress=progress, log=log)


def run_figures(run_dir: Path, report: dict) -> list[Path]:
    """Learning curves and the test confusion matrix of a finished run, saved in its folder."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    classes = list(report["per_class_accuracy"])
    return [
        learning_curves_figure(records, run_dir / "learning_curves.png", title=run_dir.name),
        confusion_matrix_figure(report["confusion_matrix"], classes, run_dir / "confusion_test.png", title=f"{run_dir.name}, test"),
    ]


def train_command(args) -> int:
    result = train_or_resume(args, TrainConfig)
    if not result.report:  # not process 0 of a distributed run: it writes and prints nothing
        return 0
    figures = run_figures(result.run_dir, result.report)
    test = result.report["test"]
    print_result(args, {"run": str(result.run_dir), "test": test, "figures": [str(f) for f in figures]}, [
        f"test top-1 {test['top1']:.2%}, top-5 {test['top5']:.2%}, loss {test['loss']:.4f} ({test['count']} images)",
        f"run folder {result.run_dir} (report.md, learning_curves.png, confusion_test.png)",
    ])
    return 0


def open_classifier(path: str, command: str):
    """`open_model` for a command that needs a classifier; another task's model is refused by name."""
    opened = open_model(path)
    if opened.task != "classification":
        group = "detect" if opened.task == "detection" else "segment"
        raise ValueError(f"{path} holds a {opened.task} model; use cnnkit {group} {command}")
    return opened


def evaluate_command(args) -> int:
    opened = open_classifier(args.run, "evaluate")
    config = opened.config or {}
    data = args.data or config.get("data")
    if data is None:
        raise ValueError(f"{args.run} is a weights file, not a run: name the data to evaluate on (--data)")
    dataset = load_dataset(data, args.data_root if args.data else config.get("data_root"),
                           image_size=opened.image_size, skip_bad=args.skip_bad, seed=config.get("seed", 0))
    if opened.config is None and len(dataset.classes) == len(opened.classes):
        opened.classes = list(dataset.classes)  # a plain weights file names no classes: the data's, in order
    if list(dataset.classes) != list(opened.classes):
        raise ValueError(f"{data}: classes {dataset.classes} differ from the model's {opened.classes}")
    metrics = evaluate(opened.model, getattr(dataset, args.split), mean=opened.mean, std=opened.std,
                       num_classes=len(opened.classes), device=resolve_device(args.device))
    figure_path = Path(args.output) if args.output else (
        Path(args.run) / f"confusion_{args.split}.png" if Path(args.run).is_dir() else Path(f"confusion_{args.split}.png"))
    confusion_matrix_figure(metrics["confusion_matrix"], opened.classes, figure_path, title=f"{dataset.name} {args.split}")
    worst = sorted(zip(metrics["per_class_accuracy"], opened.classes), key=lambda pair: (pair[0] is None, pair[0]))[:3]
    print_result(args, {**metrics, "classes": opened.classes, "figure": str(figure_path), "skipped": dataset.skipped}, [
        f"{dataset.name} {args.split}: top-1 {metrics['top1']:.2%}, top-5 {metrics['top5']:.2%}, "
        f"loss {metrics['loss']:.4f} ({metrics['count']} images)",
        "weakest classes: " + ", ".join(f"{name} {value:.1%}" for value, name in worst if value is not None),
        f"confusion matrix: {figure_path}",
    ])
    return 0


def predict_command(args) -> int:
    opened = open_classifier(args.run, "predict")
    predictions = predict(opened, args.images, topk=args.topk, device=resolve_device(args.device))
    if args.format == "json":
        print(json.dumps([p.to_dict() for p in predictions]))
        return 0
    for note in opened.notes:
        print(f"note: {note}", file=sys.stderr)
    for prediction in predictions:
        ranked = ", ".join(f"{name} {p:.1%}" for name, p in zip(prediction.classes, prediction.probabilities))
        print(f"{prediction.path}: {ranked}")
    return 0


def export_command(args) -> int:
    opened = open_classifier(args.run, "export")
    suffix = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}[args.format_]
    output = Path(args.output) if args.output else (
        Path(args.run) / f"model{suffix}" if Path(args.run).is_dir() else Path(args.run).with_suffix(suffix))
    metadata = {"class_names": opened.classes, "mean": opened.mean, "std": opened.std,
                "image_size": list(opened.image_size), "architecture": opened.architecture}
    report = export_model(opened.model, output, (opened.in_channels, *opened.image_size), args.format_, metadata)
    if args.json:
        print(json.dumps({"path": str(report.path), "format": report.format, "max_abs_difference": report.max_abs_difference}))
    else:
        print(f"wrote {report.path} ({report.format}); reloaded, it matches PyTorch within {report.max_abs_difference:.1e}")
    return 0


def add_commands(subparsers) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "train", help="train a network on built-in data, a standard format or your own folder",
        description="Train a classifier and keep everything in a run folder; resume exactly after an interruption.",
        epilog=TRAIN_EXAMPLES, formatter_class=formatter)
    add_train_options(parser, TrainConfig)
    parser.set_defaults(func=train_command)

    parser = subparsers.add_parser(
        "evaluate", help="accuracy, per-class accuracy and confusion matrix of a trained model",
        description="Evaluate a run (its best checkpoint) or a checkpoint file on a dataset split.",
        epilog=EVALUATE_EXAMPLES, formatter_class=formatter)
    parser.add_argument("run", metavar="RUN|WEIGHTS", help="a run folder, a checkpoint or a weights file "
                        "(safetensors, torchvision's or another plain state dict)")
    parser.add_argument("--data", help="dataset to evaluate on (default: the one the run trained on)")
    parser.add_argument("--data-root", help="folder of a standard-format dataset given by --data")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test", help="(default: %(default)s)")
    parser.add_argument("--skip-bad", action="store_true", help="leave unreadable image files out and list them")
    parser.add_argument("-o", "--output", help="confusion-matrix figure (default: RUN/confusion_SPLIT.png)")
    add_device_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=evaluate_command)

    parser = subparsers.add_parser(
        "predict", help="the most probable classes of image files",
        description="Classify image files with a trained model.", epilog=PREDICT_EXAMPLES, formatter_class=formatter)
    parser.add_argument("run", metavar="RUN|WEIGHTS", help="a run folder, a checkpoint or a weights file "
                        "(safetensors, torchvision's or another plain state dict)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, …)")
    parser.add_argument("--topk", type=int, default=5, help="how many classes to list per image (default: %(default)s)")
    add_device_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=predict_command)

    parser = subparsers.add_parser(
        "export", help="write a trained model as ONNX, TorchScript or safetensors, verified",
        description="Export a trained model for deployment; the file is checked against PyTorch before success is reported.",
        epilog=EXPORT_EXAMPLES, formatter_class=formatter)
    parser.add_argument("run", metavar="RUN|WEIGHTS", help="a run folder, a checkpoint or a weights file "
                        "(safetensors, torchvision's or another plain state dict)")
    parser.add_argument("--format", dest="format_", choices=EXPORT_FORMATS, default="onnx", help="(default: %(default)s)")
    parser.add_argument("-o", "--output", help="output file (default: RUN/model.onnx, .pt or .safetensors)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=export_command)
