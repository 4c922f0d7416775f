"""Training and inference throughput of cnnkit's classifiers against torchvision's, on the CPU.

For each architecture (ResNet-18, ResNet-50, GoogLeNet, VGG-11, random weights) one process
times, interleaved so that machine noise hits every variant alike:

    training step (forward + backward + SGD step), model.train():
        torchvision NCHW                 baseline: how a typical user runs it
        cnnkit default                   create_model as it comes (channels_last weights),
                                         the same NCHW input
    inference, model.eval() under torch.inference_mode():
        torchvision NCHW                 baseline
        cnnkit default
        cnnkit default + BN folded       batch norm folded into the convolutions (models.speed)

and prints images/s, the ratio to the baseline, and GFLOP/s as a share of the machine's FP32
peak, cores × FP32 FLOP per cycle × clock (``--peak-gflops``). FLOPs are 2 × the multiply-adds
of `cnnkit.nn.summary.summarize` (ResNet-18 1.81 G, ResNet-50
4.09 G, GoogLeNet 1.50 G, VGG-11 7.61 G at 224×224, as torchvision documents); a training step
counts 3 × the forward pass (forward, input gradients, weight gradients).
Each figure is the best of ``--reps`` timed repetitions after ``--warmup`` untimed ones: on a
shared machine other work only ever adds time.

    python benchmarks/models.py                      # batch 16 at 224 px, a few minutes on 2 cores
    python benchmarks/models.py --models resnet18 --batch-size 32 --reps 5
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnkit
from cnnkit.models import create_model, googlenet_loss
from cnnkit.models.speed import fold_batch_norm
from cnnkit.nn.summary import summarize
from machine import PEAK_HELP, best_times, cpu_name, peak_gflops

MODELS = ("resnet18", "resnet50", "googlenet", "vgg11")


def training_loss(outputs, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; GoogLeNet in training mode adds 0.3 × each auxiliary loss (both libraries)."""
    if isinstance(outputs, torchvision.models.GoogLeNetOutputs):
        return F.cross_entropy(outputs.logits, targets) + 0.3 * (
            F.cross_entropy(outputs.aux_logits1, targets) + F.cross_entropy(outputs.aux_logits2, targets)
        )
    if isinstance(outputs, torch.Tensor):
        return F.cross_entropy(outputs, targets)
    return googlenet_loss(outputs, targets)


def training_step(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    """One SGD step (lr 0.01, momentum 0.9) on ``model`` in training mode."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        training_loss(model(x), targets).backward()
        optimizer.step()

    return step


def inference_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward pass of ``model`` in eval mode under ``torch.inference_mode``."""
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def build_variants(name: str, batch_size: int, image_size: int) -> list[tuple[str, str, Callable]]:
    """``(mode, variant, step)`` for one architecture; the first of each mode is the baseline."""
    torch.manual_seed(0)
    x = torch.randn(batch_size, 3, image_size, image_size)  # (N, 3, H, W)
    targets = torch.randint(0, 1000, (batch_size,))

    def torchvision_model():
        # init_weights=True is GoogLeNet's current default, passed to silence its FutureWarning.
        options = {"init_weights": True} if name == "googlenet" else {}
        return getattr(torchvision.models, name)(weights=None, num_classes=1000, **options)

    # cnnkit as a user gets it: create_model's defaults (channels_last weights), the same NCHW input.
    folded = fold_batch_norm(create_model(name, num_classes=1000), x[:2]).to(memory_format=torch.channels_last)
    return [
        ("train", "torchvision NCHW", training_step(torchvision_model(), x, targets)),
        ("train", "cnnkit default", training_step(create_model(name, num_classes=1000), x, targets)),
        ("infer", "torchvision NCHW", inference_step(torchvision_model(), x)),
        ("infer", "cnnkit default", inference_step(create_model(name, num_classes=1000), x)),
        ("infer", "cnnkit default + BN folded", inference_step(folded, x)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated architectures (default: {','.join(MODELS)})")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step (default 16)")
    parser.add_argument("--image-size", type=int, default=224, help="input height = width (default 224)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--reps", type=int, default=3, help="timed rounds; best is kept (default 3)")
    parser.add_argument("--peak-gflops", type=float, default=peak_gflops(), help=PEAK_HELP)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"--models: {', '.join(unknown)} not benchmarked; choose from {', '.join(MODELS)}")

    print(f"cnnkit {cnnkit.__version__}, torch {torch.__version__}, torchvision "
          f"{torchvision.__version__}; {cpu_name()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} threads")
    peak = args.peak_gflops
    print(f"batch {args.batch_size} × 3×{args.image_size}×{args.image_size}, FP32, best of "
          f"{args.reps} after {args.warmup} warm-up; FP32 peak {peak:.0f} GFLOP/s; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    header = (f"{'model':<10} {'mode':<6} {'variant':<33} {'ms/batch':>9} {'images/s':>9} "
              f"{'ratio':>6} {'GFLOP/s':>8} {'% peak':>7}")
    print(header)
    print("-" * len(header))
    for name in names:
        model = create_model(name, num_classes=1000).eval()
        forward_flops = 2 * summarize(model, (3, args.image_size, args.image_size)).multiply_adds
        variants = build_variants(name, args.batch_size, args.image_size)
        best = best_times({(mode, variant): step for mode, variant, step in variants}, args.reps, args.warmup)
        times = [best[(mode, variant)] for mode, variant, _ in variants]
        baseline = {}
        for (mode, variant, _), seconds in zip(variants, times):
            images_per_second = args.batch_size / seconds
            baseline.setdefault(mode, images_per_second)
            flops = forward_flops * (3 if mode == "train" else 1)
            gflops = images_per_second * flops / 1e9
            print(f"{name:<10} {mode:<6} {variant:<33} {1000 * seconds:9.1f} "
                  f"{images_per_second:9.2f} {images_per_second / baseline[mode]:5.2f}× "
                  f"{gflops:8.1f} {100 * gflops / peak:6.1f}%", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(more than the CPUs: other work shared the cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
