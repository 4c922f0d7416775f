"""The region proposal network (Faster R-CNN §3.1).

A 3×3 convolution slides over each feature map; at every cell two 1×1 convolutions predict,
for each of its A anchors, an objectness logit and four box deltas. Proposals are the anchors
moved by their deltas, clipped to the image, the ``pre_nms_top_n`` most object-like per level,
non-maximum suppressed per level at IoU ``nms_thresh`` and cut to ``post_nms_top_n`` per image.

Training (§3.1.2): anchors are matched to ground truth (IoU ≥ 0.7 positive, < 0.3 negative,
plus each object's best anchors), 256 per image are sampled at up to 1:1, and the loss is
binary cross-entropy on objectness plus smooth L1 (β = 1/9) on the positives' deltas, both
normalised by the number sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

from cnnkit.detection.anchors import AnchorGenerator
from cnnkit.detection.box_coder import BoxCoder, clip_boxes, small_boxes_removed
from cnnkit.detection.sampling import IGNORED, match_boxes, sample_balanced


class RPNHead(nn.Module):
    """conv 3×3 + ReLU, then ``cls_logits`` (A per cell) and ``bbox_pred`` (4A per cell).
    Names as torchvision's ``RPNHead`` (``conv.0.0`` is the 3×3 convolution)."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU(inplace=True)))
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for layer in (self.conv[0][0], self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias, 0)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: objectness ``(N, A, H, W)`` and deltas ``(N, 4A, H, W)``."""
        objectness, deltas = [], []
        for feature in features:
            t = self.conv(feature)
            objectness.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return objectness, deltas


def flatten_predictions(objectness: list[Tensor], deltas: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-level maps to ``(N, Σ H·W·A)`` logits and ``(N, Σ H·W·A, 4)`` deltas, ordered like
    the anchors: level, then cell, then anchor."""
    flat_objectness, flat_deltas = [], []
    for logits, box_deltas in zip(objectness, deltas):
        n, a, h, w = logits.shape
        flat_objectness.append(logits.permute(0, 2, 3, 1).reshape(n, -1))  # (N, H·W·A)
        flat_deltas.append(box_deltas.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
    return torch.cat(flat_objectness, 1), torch.cat(flat_deltas, 1)


@dataclass
class ProposalSettings:
    """How many proposals survive, in training and at test time (torchvision's defaults)."""

    pre_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 1000
    post_nms_top_n_train: int = 2000
    post_nms_top_n_test: int = 1000
    nms_thresh: float = 0.7
    score_thresh: float = 0.0
    min_size: float = 1e-3


class RegionProposalNetwork(nn.Module):
    """Anchors + head + box coder: ``proposals(...)`` at any time, ``loss(...)`` in training."""

    def __init__(self, anchor_generator: AnchorGenerator, head: RPNHead, settings: ProposalSettings | None = None,
                 fg_iou_thresh: float = 0.7, bg_iou_thresh: float = 0.3, batch_size_per_image: int = 256,
                 positive_fraction: float = 0.5) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.settings = settings or ProposalSettings()
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction

    def forward(self, batch: Tensor, image_sizes: list[tuple[int, int]], features: list[Tensor], training: bool = False):
        """``(proposals, (objectness, deltas, anchors))``: proposals one ``(P_i, 4)`` per image;
        the raw predictions are what `loss` needs."""
        objectness, deltas = self.head(features)
        feature_sizes = [tuple(f.shape[-2:]) for f in features]
        # Boxes in float32 whatever the features' type: bfloat16 (AMP on a CPU) rounds 1000 px to 4 px.
        anchors = self.anchor_generator(tuple(batch.shape[-2:]), feature_sizes, batch.shape[0], torch.float32,
                                        features[0].device)
        per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in objectness]
        objectness, deltas = (p.float() for p in flatten_predictions(objectness, deltas))  # (N, M), (N, M, 4)
        proposals = self.box_coder.decode(deltas.detach().reshape(-1, 4), torch.cat(anchors))
        proposals = proposals.view(batch.shape[0], -1, 4)
        boxes = self.filter_proposals(proposals, objectness.detach(), image_sizes, per_level, training)
        return boxes, (objectness, deltas, anchors)

    def filter_proposals(self, proposals: Tensor, objectness: Tensor, image_sizes, per_level: list[int],
                         training: bool = False) -> list[Tensor]:
        """Top-n per level, sigmoid, clip, drop tiny boxes, NMS per level, keep the best n."""
        s = self.settings
        pre_nms = s.pre_nms_top_n_train if training else s.pre_nms_top_n_test
        post_nms = s.post_nms_top_n_train if training else s.post_nms_top_n_test
        num_images = proposals.shape[0]
        levels = torch.cat([torch.full((n,), level, dtype=torch.int64, device=proposals.device)
                            for level, n in enumerate(per_level)])[None].expand_as(objectness)
        top, offset = [], 0
        for logits in objectness.split(per_level, 1):
            top.append(logits.topk(min(pre_nms, logits.shape[1]), dim=1).indices + offset)
            offset += logits.shape[1]
        top = torch.cat(top, 1)
        rows = torch.arange(num_images, device=proposals.device)[:, None]
        objectness, levels, proposals = objectness[rows, top], levels[rows, top], proposals[rows, top]
        scores_all = torch.sigmoid(objectness)
        kept = []
        for boxes, scores, level, size in zip(proposals, scores_all, levels, image_sizes):
            boxes = clip_boxes(boxes, size)
            keep = small_boxes_removed(boxes, s.min_size)
            boxes, scores, level = boxes[keep], scores[keep], level[keep]
            keep = torch.where(scores >= s.score_thresh)[0]
            boxes, scores, level = boxes[keep], scores[keep], level[keep]
            keep = batched_nms(boxes, scores, level, s.nms_thresh)[:post_nms]
            kept.append(boxes[keep])
        return kept

    def loss(self, predictions, targets: list[dict]) -> dict[str, Tensor]:
        """``{"loss_objectness", "loss_rpn_box_reg"}`` for the raw predictions of `forward`."""
        objectness, deltas, anchors = predictions
        labels, regression_targets = [], []
        for anchors_per_image, target in zip(anchors, targets):
            gt = target["boxes"]
            if gt.numel() == 0:
                labels.append(torch.zeros(anchors_per_image.shape[0], device=gt.device))
                regression_targets.append(torch.zeros_like(anchors_per_image))
                continue
            matches = match_boxes(box_iou(gt, anchors_per_image), self.fg_iou_thresh, self.bg_iou_thresh, True)
            label = (matches >= 0).float()
            label[matches == IGNORED] = -1.0
            labels.append(label)
            regression_targets.append(self.box_coder.encode(gt[matches.clamp(min=0)], anchors_per_image))
        positives, negatives = [], []
        offset = 0
        for label in labels:
            positive, negative = sample_balanced(label, self.batch_size_per_image, self.positive_fraction)
            positives.append(positive + offset)
            negatives.append(negative + offset)
            offset += label.numel()
        positive, negative = torch.cat(positives), torch.cat(negatives)
        sampled = torch.cat([positive, negative])
        labels, regression_targets = torch.cat(labels), torch.cat(regression_targets)
        objectness, deltas = objectness.reshape(-1), deltas.reshape(-1, 4)
        box_loss = F.smooth_l1_loss(deltas[positive], regression_targets[positive], beta=1 / 9, reduction="sum")
        return {
            "loss_objectness": F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled]),
            "loss_rpn_box_reg": box_loss / max(1, sampled.numel()),
        }
