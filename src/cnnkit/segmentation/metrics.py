"""Semantic segmentation metrics from one confusion matrix (Long, Shelhamer & Darrell 2015, §5).

With n_ij the number of pixels of true class i predicted as class j, t_i = Σ_j n_ij the pixels
of class i and K the classes (void pixels, ``ignore_index``, are not counted):

    pixel accuracy        Σ_i n_ii / Σ_i t_i
    mean class accuracy   (1/K) Σ_i n_ii / t_i
    IoU of class i        n_ii / (t_i + Σ_j n_ji − n_ii)
    mean IoU              (1/K) Σ_i IoU_i

A class that appears neither in the truth nor in the predictions has no IoU (NaN) and is left
out of the means, as is a class without true pixels from the mean class accuracy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def confusion_matrix(predicted: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """``(K, K)`` int64 counts, row = true class, column = predicted class, over pixels whose
    target is not ``ignore_index``. ``predicted`` and ``target`` are integer tensors of one shape.
    Raises ValueError for mismatched shapes or a target outside 0..K-1 that is not void."""
    if predicted.shape != target.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} differ in shape")
    keep = target != ignore_index
    target, predicted = target[keep].long(), predicted[keep].long()
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target values must be in 0..{num_classes - 1} or {ignore_index} (void)")
    predicted = predicted.clamp(0, num_classes - 1)
    return torch.bincount(target * num_classes + predicted, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def segmentation_scores(confusion: Tensor, classes: list[str] | None = None) -> dict:
    """``{"pixel_accuracy", "mean_class_accuracy", "mean_iou", "iou": {class: IoU},
    "class_accuracy": {class: accuracy}, "pixels"}`` from a confusion matrix (NaN where undefined)."""
    confusion = confusion.double()
    true_positive = confusion.diag()
    truth, predicted = confusion.sum(1), confusion.sum(0)
    union = truth + predicted - true_positive
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, math.nan))
    accuracy = torch.where(truth > 0, true_positive / truth.clamp(min=1), torch.full_like(truth, math.nan))
    names = classes or [str(k) for k in range(confusion.shape[0])]
    total = float(truth.sum())
    return {
        "pixel_accuracy": float(true_positive.sum()) / total if total else math.nan,
        "mean_class_accuracy": _nanmean(accuracy),
        "mean_iou": _nanmean(iou),
        "iou": dict(zip(names, iou.tolist())),
        "class_accuracy": dict(zip(names, accuracy.tolist())),
        "pixels": int(total),
    }


def score_text(value: float) -> str:
    """A score with three decimals; "–" where it is undefined (NaN)."""
    return "–" if math.isnan(value) else f"{value:.3f}"


def _nanmean(values: Tensor) -> float:
    present = values[~values.isnan()]
    return float(present.mean()) if present.numel() else math.nan
