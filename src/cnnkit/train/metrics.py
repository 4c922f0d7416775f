"""Classification metrics: loss, top-k accuracy, confusion matrix, per-class accuracy.

For logits z (N, K) and labels y (N,):

    top-k accuracy     = #{i : y_i among the k largest z_i} / N
    confusion matrix   C[t, p] = #{i : y_i = t, argmax z_i = p}           (rows: true class)
    per-class accuracy = C[c, c] / Σ_p C[c, p]      (None for a class with no samples)

`evaluate` runs a model over an `ImageSet` in batches and returns all of them. In a distributed
run (torch.distributed initialised) each process evaluates the disjoint positions r, r+W, …
of the set, without padding, and the counts are summed over processes, so every image is
counted exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.data.transforms import normalize
from cnnkit.train.batches import iterate_batches
from cnnkit.train.distributed import current_processes, sum_over_processes


def topk_correct(logits: Tensor, targets: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """How many rows of ``logits`` (N, K) have their target (N,) among the k highest scores, per k.

    k larger than K counts every row. Ties are broken as `torch.topk` breaks them.
    """
    largest = min(max(ks), logits.shape[1])
    top = logits.topk(largest, dim=1).indices  # (N, largest)
    hits = top == targets[:, None]  # (N, largest), at most one True per row
    return {k: int(hits[:, : min(k, largest)].sum()) for k in ks}


def confusion_matrix(predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """``C[t, p]`` = number of samples of true class t predicted as p; (K, K) int64."""
    flat = targets.to(torch.int64) * num_classes + predictions.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(matrix: Tensor) -> list[float | None]:
    """Recall of each class from a confusion matrix: C[c, c] / Σ_p C[c, p]; None without samples."""
    totals = matrix.sum(dim=1)
    return [
        (float(matrix[c, c]) / float(totals[c])) if totals[c] > 0 else None
        for c in range(matrix.shape[0])
    ]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    imageset,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    amp: bool = False,
    loss_function: Callable[[Tensor, Tensor], Tensor] | None = None,
    workers: int = 0,
) -> dict:
    """Loss, top-1/top-5 accuracy, per-class accuracy and confusion matrix of ``model`` on ``imageset``.

    Images (in [0, 1]) are normalised with ``mean``/``std`` before the forward pass; the loss is
    ``loss_function`` (cross-entropy by default) averaged over the images. The model is put in
    eval mode (and left there). Returns ``{"loss", "top1", "top5", "count",
    "per_class_accuracy", "confusion_matrix"}`` with accuracies as fractions in [0, 1] and the
    matrix as nested lists (rows: true class). An empty set gives NaN loss and accuracies.
    """
    device = torch.device(device)
    loss_function = loss_function or F.cross_entropy
    num_classes = num_classes or _output_classes(model)
    processes = current_processes(device)
    indices = torch.arange(len(imageset))[processes.rank :: processes.world_size]  # disjoint, no padding
    model.eval()
    # loss sum, top-1 hits, top-5 hits, count; then the confusion matrix
    totals = torch.zeros(4, dtype=torch.float64)
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for x, y in iterate_batches(imageset, indices, batch_size, workers=workers):
        x = normalize(x.to(device, non_blocking=True), mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        with torch.autocast(device.type, dtype=autocast_dtype(device), enabled=amp):
            logits = model(x)
        logits = logits.float()
        hits = topk_correct(logits, y)
        totals += torch.tensor(
            [float(loss_function(logits, y)) * len(y), hits[1], hits[5], len(y)], dtype=torch.float64
        )
        matrix += confusion_matrix(logits.argmax(1).cpu(), y.cpu(), num_classes)
    totals, matrix = sum_over_processes(totals, processes), sum_over_processes(matrix, processes)
    loss_sum, top1, top5, count = totals.tolist()
    average = (lambda value: value / count) if count else (lambda value: float("nan"))
    return {
        "loss": average(loss_sum),
        "top1": average(top1),
        "top5": average(top5),
        "count": int(count),
        "per_class_accuracy": per_class_accuracy(matrix),
        "confusion_matrix": matrix.tolist(),
    }


def _output_classes(model: nn.Module) -> int:
    head = getattr(model, "classifier_name", None)
    if head:
        layer = model.get_submodule(head)
        classes = getattr(layer, "out_features", None) or getattr(layer, "out_channels", None)
        if classes:
            return int(classes)
    raise ValueError(f"pass num_classes: {type(model).__name__} names no classifier to count them from")


def autocast_dtype(device: torch.device) -> torch.dtype:
    """Mixed precision's type: bfloat16 on the CPU (no loss scaling needed), float16 on CUDA."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16
