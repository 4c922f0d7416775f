"""Commands on transfer learning: ``transfer`` (train) and ``transfer advise`` (only the advice)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnkit.cli.output import print_result
from cnnkit.cli.train import add_config_options, given_options, run_figures
from cnnkit.train import TrainConfig
from cnnkit.train.figures import confusion_matrix_figure
from cnnkit.transfer import STRATEGY_NAMES, advise, prepare, transfer
from cnnkit.transfer.finetune import DEFAULT_PRETRAINED_LR_SCALE
from cnnkit.transfer.strategies import FINETUNE_DEFAULTS, resume_transfer

EXAMPLES = """\
examples:
  cnnkit transfer advise --from ../shared/data/weights/resnet20-12fca82f.th --data digits
  cnnkit transfer --from ../shared/data/weights/resnet20-12fca82f.th --data photos/        # --strategy auto
  cnnkit transfer --from runs/resnet20-shapes --data digits --strategy intermediate --layer layer2
  cnnkit transfer --from resnet18-f37072fd.pth --data photos/ --strategy finetune-top --top-blocks 2 --epochs 5
  cnnkit transfer --resume runs/resnet20-digits       # continue an interrupted fine-tuning run

--from is a cnnkit run folder or checkpoint, a safetensors file from cnnkit, or a plain state
dict (torchvision's resnet18-*.pth, the CIFAR-10 ResNets' resnet20-*.th); its architecture is
recognised from the tensors unless --model names it. Strategies (the lecture's table):
  linear         logistic regression on the features the old classifier read (small, similar data)
  intermediate   logistic regression on a stage's pooled features (small, different data)
  finetune-top   train the top --top-blocks blocks and a new head (large, similar data)
  finetune-all   train every layer, pretrained ones at --pretrained-lr-scale times the head's rate
  auto           measure size and similarity and follow the advice (default)
Data of another image size is resized to the pretraining size; grey data on a colour network
(and the reverse) adapts the first convolution. Features are cached under --cache. A run folder
runs/NAME/ keeps config.json, transfer.json, report.md/report.json and, for linear and
fine-tuned runs, best.pt for cnnkit predict/evaluate/export.
"""


def transfer_command(args) -> int:
    if args.resume:
        result = resume_transfer(args.resume, progress=None if args.format == "text" else False)
        return _report_run(args, result)
    if not args.source or not args.data:
        raise ValueError("transfer needs --from WEIGHTS_OR_RUN and --data DATA (see cnnkit transfer --help)")
    if args.weights:
        raise ValueError("pass the pretrained weights with --from, not --weights")
    cache = None if args.no_cache else args.cache
    if args.action == "advise":
        target = prepare(args.source, args.data, architecture=args.model, data_root=args.data_root,
                         cache_dir=cache, seed=args.seed)
        advice = advise(target)
        print_result(args, advice.to_dict(), _advice_lines(advice))
        return 0
    values = given_options(args, TrainConfig)
    values["model"] = values.get("model") or "sample_net"  # replaced by the pretrained architecture
    result = transfer(args.source, args.data, strategy=args.strategy, layer=args.layer, config=TrainConfig(**values),
                      architecture=args.model, top_blocks=args.top_blocks, pretrained_lr_scale=args.pretrained_lr_scale,
                      freeze_bn=args.freeze_bn, cache_dir=cache, progress=None if args.format == "text" else False)
    if result.advice and args.format == "text":
        print("\n".join(_advice_lines(result.advice)))
    return _report_run(args, result)


def _report_run(args, result) -> int:
    report = json.loads((result.run_dir / "report.json").read_text())
    if (result.run_dir / "metrics.jsonl").exists():
        figures = run_figures(result.run_dir, report)
    else:
        figures = [confusion_matrix_figure(report["confusion_matrix"], report["data"]["classes"],
                                           result.run_dir / "confusion_test.png", title=f"{result.run_dir.name}, test")]
    test = result.test
    layer = f" on {result.layer}" if result.layer else ""
    print_result(args, {**result.to_dict(), "figures": [str(f) for f in figures]}, [
        f"{result.strategy}{layer}: test top-1 {test['top1']:.2%} ({test['count']} images), {result.seconds:.1f} s",
        *(f"adapted: {note}" for note in result.notes if not note.startswith(("architecture", "no normalisation"))),
        f"run folder {result.run_dir} (report.md, {', '.join(Path(f).name for f in figures)})",
    ])
    return 0


def _advice_lines(advice) -> list[str]:
    m = advice.measurements
    lines = [f"quadrant: {advice.quadrant} → {advice.strategy}" + (f" (layer {advice.layer})" if advice.layer else ""),
             f"  examples per class: {m['examples_per_class']['min']} in the smallest class "
             f"(large from {m['examples_per_class']['threshold']})"]
    divergence = m["batchnorm_divergence"]
    lines.append("  batch-norm statistics: " + ("no batch-norm layers" if divergence is None else
                 f"mean KL divergence {divergence['mean']:.3f} (similar below {divergence['limit']})"))
    lines.append("  linear probe, validation top-1: " + ", ".join(
        f"{s['layer']} {s['val_top1']:.1%}" for s in m["probe"]["layers"]) + f"; peak {m['probe_peak']}")
    return [*lines, "", advice.explanation, ""]


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "transfer", help="transfer a pretrained network to your data (or only advise how)",
        description="Transfer learning: feature extraction, an intermediate-layer classifier or fine-tuning, "
                    "chosen by measuring your data (cnnkit transfer advise) or by --strategy.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", nargs="?", choices=("run", "advise"), default="run",
                        help="run (default): train and write a run folder; advise: only print the advice")
    parser.add_argument("--from", dest="source", metavar="WEIGHTS_OR_RUN", help="pretrained weights file, run folder or checkpoint")
    parser.add_argument("--strategy", choices=STRATEGY_NAMES, default="auto", help="(default: %(default)s)")
    parser.add_argument("--layer", metavar="NAME", help="layer for linear/intermediate (a stage such as layer2, "
                        "any submodule, or head-input)")
    parser.add_argument("--top-blocks", type=int, metavar="K", help="blocks trained by finetune-top (default: the last stage's)")
    parser.add_argument("--pretrained-lr-scale", type=float, default=DEFAULT_PRETRAINED_LR_SCALE,
                        help="learning rate of pretrained layers relative to the new head's (default: %(default)s)")
    parser.add_argument("--freeze-bn", action="store_true", help="keep every batch-norm layer on its stored statistics")
    parser.add_argument("--cache", default="default", metavar="DIR",
                        help="feature cache folder (default: $CNNKIT_CACHE/features or ~/.cache/cnnkit/features)")
    parser.add_argument("--no-cache", action="store_true", help="compute features without reading or writing the cache")
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted fine-tuning run")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")
    add_config_options(parser)
    parser.set_defaults(func=transfer_command, data=None, model=None, **FINETUNE_DEFAULTS)
    helps = {"data": "target dataset: a built-in, a folder of class sub-folders or a CSV (required)",
             "model": "architecture of --from (default: from the run or metadata, else recognised from the tensors)",
             "weights": "not used: pass the pretrained weights with --from",
             **{name: f"(default: {value}, for fine-tuning)" for name, value in FINETUNE_DEFAULTS.items()}}
    for action in parser._actions:
        if action.dest in helps:
            action.help = helps[action.dest]
