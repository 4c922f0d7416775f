"""The run report: test metrics, per-class accuracy, confusion matrix, skipped files, timing and
environment, as ``report.json`` (for scripts) and ``report.md`` (for people)."""

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


def write_report(run_dir: Path, config, dataset, state: dict, test: dict, augmentation: str, processes) -> dict:
    """Write report.json and report.md into ``run_dir``; returns the report dict."""
    history = state["history"]
    seconds = sum(record["seconds"] for record in history)
    images = sum(record["images_per_second"] * record["seconds"] for record in history)
    report = {
        "run": run_dir.name,
        "model": config.model,
        "data": dataset.to_dict() if hasattr(dataset, "to_dict") else {"name": dataset.name},
        "augmentation": augmentation,
        "test": {key: test[key] for key in ("loss", "top1", "top5", "count") if key in test},
        "per_class_accuracy": dict(zip(dataset.classes, test.get("per_class_accuracy", []))),
        "confusion_matrix": test.get("confusion_matrix"),
        "best": state["best"],
        "epochs": len(history),
        "steps": state["step"],
        "skipped": [{"path": str(path), "reason": reason} for path, reason in dataset.skipped],
        "timing": {"train_seconds": seconds, "images_per_second": images / seconds if seconds else None},
        "environment": environment(processes),
    }
    with atomic_write(run_dir / "report.json") as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_write(run_dir / "report.md") as temporary:
        temporary.write_text(_markdown(report, dataset.classes))
    return report


def _markdown(report: dict, classes: list[str]) -> str:
    test, timing, env = report["test"], report["timing"], report["environment"]
    best = report["best"]
    lines = [
        f"# Run {report['run']}: {report['model']} on {report['data']['name']}",
        "",
        f"Test top-1 **{_percent(test.get('top1'))}**, top-5 {_percent(test.get('top5'))}, "
        f"loss {test.get('loss', float('nan')):.4f} on {test.get('count', 0)} images, with the checkpoint "
        f"of epoch {(best['epoch'] or 0) + 1} (best {best['metric']} {_percent(best['value'])}).",
        "",
        f"{report['epochs']} epochs, {report['steps']} steps, {timing['train_seconds']:.1f} s of training"
        + (f", {timing['images_per_second']:.0f} images/s" if timing["images_per_second"] else "")
        + f"; augmentation {report['augmentation']}.",
        "",
        "## Per-class accuracy",
        "",
        "| class | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_percent(value)} |" for name, value in report["per_class_accuracy"].items()]
    matrix = report["confusion_matrix"]
    if matrix:
        lines += ["", "## Confusion matrix (rows: true class, columns: predicted)", "",
                  "| | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(classes, matrix)]
    lines += ["", "## Skipped files", ""]
    lines += [f"- {item['path']}: {item['reason']}" for item in report["skipped"]] or ["none"]
    lines += ["", "## Environment", "", f"Python {env['python']}, torch {env['torch']}, cnnkit {env['cnnkit']}; "
              f"{env['cpu']}, {env['threads']} threads; device {env['device']}"
              + (f" ({env['cuda']})" if env["cuda"] else "") + f"; {env['processes']} process(es).", ""]
    return "\n".join(lines)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


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
