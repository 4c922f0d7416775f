"""What the benchmarks share: the machine's description, its FP32 ceiling, interleaved timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def flops_per_cycle() -> int:
    """FP32 FLOP per cycle per core: 2 FMA units × SIMD lanes × 2 (multiply and add)."""
    flags = cpu_flags()
    if "avx512f" in flags:
        return 64  # 16 lanes
    if "avx2" in flags and "fma" in flags:
        return 32  # 8 lanes
    return 8


def matmul_gflops(size: int = 2048, reps: int = 5) -> float:
    """Best FP32 rate of a (size × size) @ (size × size) product on all threads: 2·size³ FLOP."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def describe_machine() -> str:
    return (f"{cpu_name()}, {torch.get_num_threads()} threads, {flops_per_cycle()} FP32 FLOP/cycle/core, "
            f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")


def best_times(functions: dict[str, Callable[[], object]], reps: int, warmup: int) -> dict[str, float]:
    """Best wall time of each function over ``reps`` rounds, the functions interleaved in a round.

    On a shared machine other work only ever adds time, so the minimum is the cleanest figure.
    """
    best = {name: float("inf") for name in functions}
    for round_index in range(warmup + reps):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                best[name] = min(best[name], elapsed)
    return best


def nominal_clock_ghz() -> float:
    """The clock /proc/cpuinfo reports (nominal; boost clocks may run higher), else 2.45 GHz."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("cpu MHz"):
                    return round(float(line.split(":", 1)[1]) / 1000, 2)
    except (OSError, ValueError):
        pass
    return 2.45
