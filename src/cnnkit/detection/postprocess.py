"""From per-class scores and boxes to detections: the last stage of every detector here.

For each region r and class k ≥ 1 (0 is the background): a candidate (box_rk, p_rk). Keep the
candidates with p > ``score_thresh`` and both sides ≥ ``min_size``, run non-maximum
suppression per class at IoU ``nms_thresh`` (R-CNN §2.2, "greedy non-maximum suppression
(for each class independently)"), and return the ``detections_per_image`` best.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from cnnkit.detection.box_coder import clip_boxes, small_boxes_removed
from cnnkit.detection.structures import Detections


def select_detections(scores: Tensor, boxes: Tensor, image_size: tuple[int, int], score_thresh: float = 0.05,
                      nms_thresh: float = 0.5, detections_per_image: int = 100, min_size: float = 1e-2) -> Detections:
    """``scores (R, K+1)`` (column 0 the background) and ``boxes (R, K+1, 4)`` or ``(R, 4)``
    (one box for all classes) → `Detections` sorted by score."""
    num_classes = scores.shape[1]
    if boxes.dim() == 2:
        boxes = boxes[:, None].expand(-1, num_classes, -1)
    boxes = clip_boxes(boxes, image_size)
    labels = torch.arange(num_classes, device=scores.device).view(1, -1).expand_as(scores)
    boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
    keep = torch.where(scores > score_thresh)[0]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = small_boxes_removed(boxes, min_size)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_image]
    return Detections(boxes[keep], scores[keep], labels[keep])
