"""What the benchmarks share: the machine's description, its FP32 ceiling, interleaved timing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch

from cnnkit.train.report import cpu_name


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def flops_per_cycle() -> int:
    """FP32 FLOP per cycle per core: 2 FMA units × SIMD lanes × 2 (multiply and add)."""
    flags = cpu_flags()
    if "avx512f" in flags:
        return 64  # 16 lanes
    if "avx2" in flags and "fma" in flags:
        return 32  # 8 lanes
    return 8


BOOST_CLOCK_GHZ = 4.1
"""Sustained all-core clock of the project's machine (2 Zen 5 vCPUs): a C loop of independent
AVX-512 FMAs ran at 263 GFLOP/s on one core and 526 on two, i.e. 64 FLOP/cycle at ~4.1 GHz."""

PEAK_HELP = (
    "FP32 peak in GFLOP/s, cores × FLOP/cycle × GHz (default: this machine's threads × FLOP/cycle "
    f"from its SIMD width × {BOOST_CLOCK_GHZ} GHz, measured on the project's 2 Zen 5 cores: 525; "
    "2 Zen 3 cores with AVX2 at 2.45 GHz give 157)"
)


def peak_gflops(clock_ghz: float = BOOST_CLOCK_GHZ) -> float:
    """FP32 peak: threads × FLOP/cycle/core × clock."""
    return torch.get_num_threads() * flops_per_cycle() * clock_ghz


def describe_machine() -> str:
    return (f"{cpu_name()}, {torch.get_num_threads()} threads, {flops_per_cycle()} FP32 FLOP/cycle/core, "
            f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")


def best_times(functions: dict[str, Callable[[], object]], reps: int, warmup: int) -> dict[str, float]:
    """Best wall time of each function over ``reps`` rounds, the functions interleaved in a round.

    Each round starts at the next function, so that no function always runs right after the
    same neighbour (allocator and cache effects follow the order). On a shared machine other
    work only ever adds time, so the minimum is the cleanest figure.
    """
    names = list(functions)
    best = {name: float("inf") for name in names}
    for round_index in range(warmup + reps):
        offset = round_index % len(names)
        for name in names[offset:] + names[:offset]:
            start = time.perf_counter()
            functions[name]()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                best[name] = min(best[name], elapsed)
    return best
