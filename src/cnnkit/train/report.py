"""The run report of any task: what the splits hold, the test figures, the best epoch, timing and
environment, and what the task adds (per-class accuracy and confusion matrix for
classification, per-class AP for detection…), as ``report.json`` (for scripts) and
``report.md`` (for people)."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

import cnnkit
from cnnkit.files import atomic_write


def environment(processes) -> dict:
    """Versions and hardware that the timings depend on."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cnnkit": cnnkit.__version__,
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "device": str(processes.device),
        "cuda": torch.cuda.get_device_name(processes.device) if processes.device.type == "cuda" else None,
        "processes": processes.world_size,
    }


def write_report(run_dir: Path, task, config, data, state: dict, test: dict, processes) -> dict:
    """Write report.json and report.md into ``run_dir``; returns the report dict.

    Common to every task: the run, the task, what each split holds (``task.describe``), the
    test figures (numbers only; the task's report adds the rest), the best epoch, timing and
    environment.
    """
    history = state["history"]
    seconds = sum(record["seconds"] for record in history)
    images = sum(record["images_per_second"] * record["seconds"] for record in history)
    report = {
        "run": run_dir.name,
        "task": task.name,
        "model": getattr(config, "model", None) or getattr(config, "method", None),
        "data": task.describe(data),
        "test": {key: value for key, value in test.items() if value is None or isinstance(value, (int, float))},
        "best": state["best"],
        "epochs": len(history),
        "steps": state["step"],
        "timing": {"train_seconds": seconds, "images_per_second": images / seconds if seconds else None},
        "environment": environment(processes),
    }
    if hasattr(task, "report"):
        report.update(task.report(data, test))
    with atomic_write(run_dir / "report.json") as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_write(run_dir / "report.md") as temporary:
        temporary.write_text(_markdown(report, task, test))
    return report


def _markdown(report: dict, task, test: dict) -> str:
    timing, env, best = report["timing"], report["environment"], report["best"]
    value = best["value"]
    lines = [
        f"# Run {report['run']}: {report['model']} on {report['data'].get('name', 'data')} ({report['task']})",
        "",
        f"Test: **{task.summary(test)}**, with the checkpoint of epoch {(best['epoch'] or 0) + 1} "
        f"(best {best['metric']} {'-' if value is None else f'{value:.4f}'}).",
        "",
        f"{report['epochs']} epochs, {report['steps']} steps, {timing['train_seconds']:.1f} s of training"
        + (f", {timing['images_per_second']:.0f} images/s" if timing["images_per_second"] else "") + ".",
        "",
    ]
    sizes = report["data"].get("sizes")
    if sizes:
        lines += ["Images: " + ", ".join(f"{split} {count}" for split, count in sizes.items()) + ".", ""]
    if hasattr(task, "markdown"):
        lines += task.markdown(report)
    lines += ["", "## Environment", "", f"Python {env['python']}, torch {env['torch']}, cnnkit {env['cnnkit']}; "
              f"{env['cpu']}, {env['threads']} threads; device {env['device']}"
              + (f" ({env['cuda']})" if env["cuda"] else "") + f"; {env['processes']} process(es).", ""]
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform reports."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or sys.platform
