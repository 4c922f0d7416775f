"""cnnkit's 2-D convolution against torch.nn.functional.conv2d and scipy, on the CPU.

Three questions, answered in one process with the variants interleaved so that machine noise
hits all of them alike:

1. Does cnnkit add overhead over the PyTorch call it wraps? ``cross_correlation`` vs
   ``F.conv2d`` on realistic layers (ratio of times; ≤ 1.05 means none measurable).
2. How much faster is it than what a NumPy user would write? ``scipy.signal.correlate2d`` per
   (input channel, output channel) pair, summed — on one image, as that takes seconds.
3. How close to the machine does it run? GFLOP/s of the 3×3, 64→64 layer at 56×56 (FLOPs =
   2 · H_out · W_out · K² · C_in · C_out per image) in NCHW and channels_last, against the FP32
   peak: cores × FLOP/cycle (2 FMA units × 8 AVX2 or 16 AVX-512 lanes × 2) × clock
   (``--peak-gflops`` overrides it; see ``machine.py``).

    python benchmarks/ops.py                 # about a minute on 2 cores
    python benchmarks/ops.py --reps 30 --batch-size 16
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

from cnnkit import __version__
from cnnkit.ops import convolution, cross_correlation
from machine import PEAK_HELP, best_times, describe_machine, peak_gflops

LAYERS = [  # name, (C_in, H, W), (C_out, K), stride, padding
    ("3x3 64->64 @56", (64, 56, 56), (64, 3), 1, 1),
    ("7x7/2 3->64 @224", (3, 224, 224), (64, 7), 2, 3),
    ("1x1 256->64 @56", (256, 56, 56), (64, 1), 1, 0),
    ("3x3/2 128->256 @28", (128, 28, 28), (256, 3), 2, 1),
]


def overhead_table(batch_size: int, reps: int, warmup: int) -> None:
    print(f"\n1. cnnkit wrapper overhead, batch {batch_size}, best of {reps} interleaved runs")
    print(f"{'layer':<22}{'F.conv2d ms':>13}{'cnnkit ms':>11}{'ratio':>8}{'convolution ms':>16}{'ratio':>8}")
    for name, (c_in, h, w), (c_out, k), stride, padding in LAYERS:
        x = torch.randn(batch_size, c_in, h, w)
        weight, bias = torch.randn(c_out, c_in, k, k), torch.randn(c_out)
        result = best_times({
            "torch": lambda: F.conv2d(x, weight, bias, stride, padding),
            "cnnkit": lambda: cross_correlation(x, weight, bias, stride, padding),
            "flipped": lambda: convolution(x, weight, bias, stride, padding),
        }, reps, warmup)
        base = result["torch"]
        print(f"{name:<22}{base * 1e3:>13.2f}{result['cnnkit'] * 1e3:>11.2f}{result['cnnkit'] / base:>8.3f}"
              f"{result['flipped'] * 1e3:>16.2f}{result['flipped'] / base:>8.3f}")


def scipy_layer(x: np.ndarray, weight: np.ndarray, padding: int) -> np.ndarray:
    """The NumPy user's layer: correlate2d for every (c_out, c_in) pair, summed over c_in."""
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    return np.stack([sum(scipy.signal.correlate2d(padded[c], weight[o, c], mode="valid") for c in range(x.shape[0]))
                     for o in range(weight.shape[0])])


def scipy_table(reps: int) -> None:
    print("\n2. against scipy.signal.correlate2d per channel pair, one image")
    print(f"{'layer':<22}{'scipy ms':>11}{'cnnkit ms':>11}{'speed-up':>10}{'max |diff|':>12}")
    for name, (c_in, h, w), (c_out, k), stride, padding in LAYERS:
        if stride != 1:
            continue  # correlate2d has no stride; a user would subsample a full result
        x = torch.randn(1, c_in, h, w)
        weight = torch.randn(c_out, c_in, k, k)
        x_np, w_np = x[0].double().numpy(), weight.double().numpy()
        result = best_times({
            "scipy": lambda: scipy_layer(x_np, w_np, padding),
            "cnnkit": lambda: cross_correlation(x, weight, padding=padding),
        }, max(1, reps // 10), 0)
        difference = np.abs(scipy_layer(x_np, w_np, padding) - cross_correlation(x, weight, padding=padding)[0].double().numpy()).max()
        print(f"{name:<22}{result['scipy'] * 1e3:>11.1f}{result['cnnkit'] * 1e3:>11.2f}"
              f"{result['scipy'] / result['cnnkit']:>9.0f}×{difference:>12.1e}")


def peak_table(batch_size: int, reps: int, warmup: int, peak: float) -> None:
    n, c, hw, k = batch_size, 64, 56, 3
    flops = 2 * n * hw * hw * k * k * c * c
    x = torch.randn(n, c, hw, hw)
    weight = torch.randn(c, c, k, k)
    x_last, weight_last = x.contiguous(memory_format=torch.channels_last), weight.contiguous(memory_format=torch.channels_last)
    result = best_times({
        "NCHW": lambda: cross_correlation(x, weight, padding=1),
        "channels_last": lambda: cross_correlation(x_last, weight_last, padding=1),
        "F.conv2d NCHW": lambda: F.conv2d(x, weight, padding=1),
    }, reps, warmup)
    print(f"\n3. 3x3 64->64 at 56x56, batch {n}: {flops / 1e9:.1f} GFLOP per call; FP32 peak {peak:.0f} GFLOP/s")
    print(f"{'variant':<22}{'ms':>10}{'GFLOP/s':>10}{'of peak':>9}")
    for name, seconds in result.items():
        rate = flops / seconds / 1e9
        print(f"{name:<22}{seconds * 1e3:>10.1f}{rate:>10.1f}{rate / peak:>8.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-gflops", type=float, default=peak_gflops(), help=PEAK_HELP)
    args = parser.parse_args()
    print(f"cnnkit {__version__} on {describe_machine()}")
    torch.manual_seed(0)
    overhead_table(args.batch_size, args.reps, args.warmup)
    scipy_table(args.reps)
    peak_table(args.batch_size * 4, args.reps, args.warmup, args.peak_gflops)


if __name__ == "__main__":
    main()
