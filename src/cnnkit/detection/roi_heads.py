"""RoI heads: from proposals to classified, refined boxes (Fast R-CNN §2).

Three parts, each its own module:

- `RoIPooler`: each proposal's region of a feature map pooled to a fixed grid — RoI max
  pooling (Fast R-CNN §2.1) or RoIAlign (Mask R-CNN §3), on the pyramid level that matches
  its size (FPN eq. 1: k = ⌊k₀ + log₂(√(wh)/224)⌋, k₀ = 4, clamped to the levels present).
- `TwoMLPHead`: two fully connected layers with ReLU (fc6, fc7).
- `BoxPredictor`: a (K+1)-way classifier ``cls_score`` and per-class deltas ``bbox_pred``.

`RoIHeads` wires them. Training samples 512 RoIs per image at up to 25 % positives (IoU ≥ 0.5
with an object; the ground-truth boxes join the proposals), and the multi-task loss is
L = L_cls(p, u) + [u ≥ 1] L_loc(t^u, v): log loss plus smooth L1 (β = 1/9) on the true class's
deltas (Fast R-CNN eq. 1), the box term averaged over all sampled RoIs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_area, box_iou, roi_align, roi_pool

from cnnkit.detection.box_coder import BoxCoder
from cnnkit.detection.postprocess import select_detections
from cnnkit.detection.sampling import IGNORED, match_boxes, sample_balanced
from cnnkit.detection.structures import Detections


def rois_with_batch_index(boxes: list[Tensor]) -> Tensor:
    """``(R, 5)`` rows (image index, x1, y1, x2, y2), the layout roi_align and roi_pool take."""
    indices = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)])
    return torch.cat([indices, torch.cat(boxes)], dim=1)


def pyramid_levels(boxes: list[Tensor], k_min: int, k_max: int, canonical_size: int = 224,
                   canonical_level: int = 4) -> Tensor:
    """FPN eq. 1: the level ``k − k_min`` each box is pooled from."""
    s = torch.sqrt(torch.cat([box_area(b) for b in boxes]))
    levels = torch.floor(canonical_level + torch.log2(s / canonical_size) + torch.tensor(1e-6, dtype=s.dtype))
    return (levels.clamp(min=k_min, max=k_max) - k_min).to(torch.int64)


class RoIPooler(nn.Module):
    """Pool ``(R, C, size, size)`` features for the proposals from the feature maps.

    ``method`` is "align" (RoIAlign, bilinear, ``sampling_ratio`` points per bin) or "max"
    (RoI max pooling). Each map's scale (1/stride) is inferred as the power of two nearest to
    feature size / image size; with several maps, boxes go to levels by `pyramid_levels`.
    ``levels`` pools from the first maps only: an FPN's P2..P5, while its coarsest map (P6)
    serves the RPN alone, as in the FPN paper and torchvision's detectors.
    """

    def __init__(self, output_size: int = 7, sampling_ratio: int = 2, method: str = "align",
                 levels: int | None = None) -> None:
        super().__init__()
        if method not in ("align", "max"):
            raise ValueError(f"unknown RoI pooling {method!r}; choose align or max")
        self.output_size, self.sampling_ratio, self.method = output_size, sampling_ratio, method
        self.levels = levels

    def pool(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        if self.method == "max":  # torchvision's roi_pool has no autocast: features in the boxes' float32
            return roi_pool(feature.to(rois.dtype), rois, self.output_size, spatial_scale=scale)
        return roi_align(feature, rois, self.output_size, spatial_scale=scale, sampling_ratio=self.sampling_ratio)

    def forward(self, features: list[Tensor], boxes: list[Tensor], image_sizes: list[tuple[int, int]]) -> Tensor:
        features = features[: self.levels] if self.levels else features
        largest = (max(s[0] for s in image_sizes), max(s[1] for s in image_sizes))
        scales = [2.0 ** round(math.log2(f.shape[-2] / largest[0])) for f in features]
        rois = rois_with_batch_index(boxes)  # (R, 5)
        if len(features) == 1:
            return self.pool(features[0], rois, scales[0])
        k_min, k_max = int(-math.log2(scales[0])), int(-math.log2(scales[-1]))
        levels = pyramid_levels(boxes, k_min, k_max)
        channels = features[0].shape[1]
        result = features[0].new_zeros((rois.shape[0], channels, self.output_size, self.output_size))
        for level, (feature, scale) in enumerate(zip(features, scales)):
            index = torch.where(levels == level)[0]
            result[index] = self.pool(feature, rois[index], scale).to(result.dtype)
        return result  # (R, C, size, size)


class TwoMLPHead(nn.Module):
    """flatten → fc6 → ReLU → fc7 → ReLU: ``(R, C, s, s) → (R, representation_size)``."""

    def __init__(self, in_features: int, representation_size: int = 1024) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))


class BoxPredictor(nn.Module):
    """``cls_score``: (R, K+1) logits; ``bbox_pred``: (R, 4(K+1)) class-specific deltas."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


class RoIHeads(nn.Module):
    """Pooler → box head → predictor; `loss` for training, `detect` for inference."""

    def __init__(self, box_roi_pool: RoIPooler, box_head: nn.Module, box_predictor: BoxPredictor,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 100) -> None:
        super().__init__()
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img

    def predict_regions(self, features: list[Tensor], proposals: list[Tensor], image_sizes) -> tuple[Tensor, Tensor]:
        """Class logits ``(R, K+1)`` and deltas ``(R, 4(K+1))`` for all proposals of the batch, in
        float32 (under AMP too, for the box arithmetic that follows)."""
        pooled = self.box_roi_pool(features, proposals, image_sizes)  # (R, C, s, s)
        class_logits, deltas = self.box_predictor(self.box_head(pooled))
        return class_logits.float(), deltas.float()

    def sample_regions(self, proposals: list[Tensor], targets: list[dict]):
        """Per image: sampled proposals (with the ground truth added), their class labels
        (0 = background) and regression targets."""
        sampled, labels, regression_targets = [], [], []
        for boxes, target in zip(proposals, targets):
            gt, gt_labels = target["boxes"].to(boxes.dtype), target["labels"]
            boxes = torch.cat([boxes, gt])
            if gt.numel() == 0:
                matches = torch.full((boxes.shape[0],), -1, dtype=torch.int64, device=boxes.device)
                label = torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
            else:
                matches = match_boxes(box_iou(gt, boxes), self.fg_iou_thresh, self.bg_iou_thresh)
                label = gt_labels[matches.clamp(min=0)].clone()
                label[matches < 0] = 0
                label[matches == IGNORED] = -1
            positive, negative = sample_balanced(label, self.batch_size_per_image, self.positive_fraction)
            keep = torch.cat([positive, negative])
            boxes, label, matched = boxes[keep], label[keep], matches[keep].clamp(min=0)
            matched_gt = gt[matched] if gt.numel() else torch.zeros_like(boxes)
            sampled.append(boxes)
            labels.append(label)
            regression_targets.append(self.box_coder.encode(matched_gt, boxes))
        return sampled, labels, regression_targets

    def loss(self, features: list[Tensor], proposals: list[Tensor], image_sizes, targets: list[dict]) -> dict[str, Tensor]:
        """``{"loss_classifier", "loss_box_reg"}``: the multi-task loss over sampled RoIs."""
        sampled, labels, regression_targets = self.sample_regions(proposals, targets)
        class_logits, deltas = self.predict_regions(features, sampled, image_sizes)
        return fast_rcnn_loss(class_logits, deltas, torch.cat(labels), torch.cat(regression_targets))

    def detect(self, features: list[Tensor], proposals: list[Tensor], image_sizes) -> list[Detections]:
        class_logits, deltas = self.predict_regions(features, proposals, image_sizes)
        boxes = self.box_coder.decode(deltas, torch.cat(proposals))  # (R, K+1, 4)
        scores = F.softmax(class_logits, -1)
        counts = [len(p) for p in proposals]
        return [
            select_detections(s, b, size, self.score_thresh, self.nms_thresh, self.detections_per_img)
            for s, b, size in zip(scores.split(counts), boxes.split(counts), image_sizes)
        ]


def fast_rcnn_loss(class_logits: Tensor, deltas: Tensor, labels: Tensor, regression_targets: Tensor) -> dict[str, Tensor]:
    """Fast R-CNN eq. 1: cross-entropy over K+1 classes plus smooth L1 on the deltas of each
    positive RoI's own class, summed and divided by the number of RoIs."""
    classification = F.cross_entropy(class_logits, labels)
    positive = torch.where(labels > 0)[0]
    deltas = deltas.reshape(deltas.shape[0], -1, 4)[positive, labels[positive]]  # (P, 4)
    box_loss = F.smooth_l1_loss(deltas, regression_targets[positive], beta=1 / 9, reduction="sum")
    return {"loss_classifier": classification, "loss_box_reg": box_loss / max(1, labels.numel())}
