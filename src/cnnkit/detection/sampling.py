"""Which reference boxes learn what: IoU matching and balanced sampling.

Matching (Faster R-CNN §3.1.2): each anchor or proposal takes the ground-truth box it overlaps
most. IoU ≥ ``high`` makes it a positive for that box, IoU < ``low`` a negative (background),
anything between is ignored. With ``allow_low_quality_matches`` every ground-truth box also
keeps the anchors that overlap it best, even below ``high``, so no object goes unlearned.

Sampling: a mini-batch of ``batch_size`` per image with at most ``positive_fraction``
positives, filled up with negatives (RPN: 256 at 1:1; RoI heads: 512 at 1:3, Fast R-CNN §2.3).
"""

from __future__ import annotations

import torch
from torch import Tensor

BACKGROUND = -1
IGNORED = -2


def match_boxes(iou: Tensor, high: float, low: float, allow_low_quality_matches: bool = False) -> Tensor:
    """For ``iou (G, P)`` (ground truth × predictions): ``(P,)`` with the matched ground-truth
    index, `BACKGROUND` (−1) below ``low`` or `IGNORED` (−2) between ``low`` and ``high``."""
    if iou.numel() == 0:
        return torch.full((iou.shape[1],), BACKGROUND, dtype=torch.int64, device=iou.device)
    best_iou, matches = iou.max(dim=0)
    best_matches = matches.clone()
    matches[best_iou < low] = BACKGROUND
    matches[(best_iou >= low) & (best_iou < high)] = IGNORED
    if allow_low_quality_matches:
        best_per_truth = iou.max(dim=1).values
        predictions = torch.where(iou == best_per_truth[:, None])[1]
        matches[predictions] = best_matches[predictions]
    return matches


def sample_balanced(labels: Tensor, batch_size: int, positive_fraction: float,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Indices ``(positives, negatives)`` of a random mini-batch from ``labels (P,)`` where
    ≥ 1 is positive, 0 negative and −1 ignored."""
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_positive = min(int(batch_size * positive_fraction), positive.numel())
    num_negative = min(batch_size - num_positive, negative.numel())
    positive = positive[torch.randperm(positive.numel(), generator=generator)[:num_positive].to(labels.device)]
    negative = negative[torch.randperm(negative.numel(), generator=generator)[:num_negative].to(labels.device)]
    return positive, negative
