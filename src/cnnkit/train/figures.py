"""Figures of a training run: the confusion matrix and the learning curves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cnnkit.figures import pyplot


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """Save the confusion matrix (rows: true class, columns: predicted) as a PNG, rows normalised.

    Each cell shows the fraction of the true class predicted as the column's class, with the
    count written in it when the matrix is small enough to read.
    """
    import numpy as np

    plt = pyplot()
    counts = np.asarray(matrix, dtype=float)
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size), layout="constrained")
    image = axis.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, label="fraction of the true class")
    ticks = range(len(classes))
    axis.set_xticks(ticks, classes, rotation=90 if max(map(len, classes)) > 3 else 0)
    axis.set_yticks(ticks, classes)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    if len(classes) <= 20:
        for i, j in np.ndindex(counts.shape):
            if counts[i, j]:
                axis.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=8,
                          color="white" if fractions[i, j] > 0.5 else "black")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axis.set_title(f"{title + ': ' if title else ''}confusion matrix, accuracy {accuracy:.1%}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def learning_curves_figure(records: Sequence[dict], path: str | os.PathLike, title: str = "") -> Path:
    """Save loss and accuracy per epoch (training and validation) from a run's metrics.jsonl records."""
    plt = pyplot()
    epochs = [record["epoch"] for record in records]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for split in ("train", "val"):
        if f"{split}_loss" in records[0]:
            loss_axis.plot(epochs, [r[f"{split}_loss"] for r in records], marker="o", label=split)
        key = f"{split}_top1"
        if key in records[0]:
            accuracy_axis.plot(epochs, [r[key] for r in records], marker="o", label=split)
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
