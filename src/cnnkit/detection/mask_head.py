"""Mask R-CNN's mask branch (He, Gkioxari, Dollár & Girshick 2017, §3): a small fully
convolutional network on each RoI's RoIAlign features, predicting one m×m mask per class.

- `MaskHead`: four 3×3 convolutions with ReLU, 256 wide (``(R, C, 14, 14) → (R, 256, 14, 14)``).
- `MaskPredictor`: a 2× transposed convolution with ReLU (``conv5_mask``) and a 1×1 convolution
  to K + 1 mask logits (``mask_fcn_logits``): ``(R, 256, 14, 14) → (R, K+1, 28, 28)``.
- `mask_loss`: the per-pixel sigmoid binary cross-entropy of the mask of the RoI's own class
  only (L_mask, §3: "masks across classes do not compete"), against the ground-truth mask cut
  out of the object's full-resolution mask by RoIAlign at the RoI's box.
- `paste_masks`: the m×m probabilities resized bilinearly to each box (widened by one cell on
  each side, so the mask's border interpolates towards zero) and written into an image-sized map.

Names and arithmetic follow torchvision's ``MaskRCNNHeads``/``MaskRCNNPredictor``/
``paste_masks_in_image``, so its ``maskrcnn_resnet50_fpn`` weights give the same masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align


class MaskHead(nn.Sequential):
    """``layers`` × (3×3 conv, ReLU), ``width`` channels; names ``0.0``, ``1.0``, … as torchvision's."""

    def __init__(self, in_channels: int, width: int = 256, layers: int = 4) -> None:
        blocks = []
        for index in range(layers):
            conv = nn.Conv2d(in_channels if index == 0 else width, width, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            blocks.append(nn.Sequential(conv, nn.ReLU(inplace=True)))
        super().__init__(*blocks)


class MaskPredictor(nn.Module):
    """``conv5_mask`` (2×2 transposed conv, stride 2) → ReLU → ``mask_fcn_logits`` (1×1, K + 1 maps)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 256) -> None:
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(in_channels, width, 2, stride=2)
        self.mask_fcn_logits = nn.Conv2d(width, num_classes, 1)
        for layer in (self.conv5_mask, self.mask_fcn_logits):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.mask_fcn_logits(F.relu(self.conv5_mask(x)))  # (R, K+1, 2s, 2s)


def project_masks_on_boxes(masks: Tensor, boxes: Tensor, matched: Tensor, size: int) -> Tensor:
    """``(P, size, size)`` targets in [0, 1]: object ``matched[p]``'s mask ``masks (G, H, W)``
    sampled by RoIAlign over box p (in the same pixels as the masks)."""
    rois = torch.cat([matched[:, None].to(boxes.dtype), boxes], dim=1)  # (P, 5): object index, box
    return roi_align(masks[:, None].to(boxes.dtype), rois, (size, size), 1.0)[:, 0]


def mask_loss(mask_logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of each positive RoI's own-class logits ``mask_logits[p, labels[p]]``
    against its target; 0 (keeping the graph) when there are no positives."""
    if targets.numel() == 0:
        return mask_logits.sum() * 0
    chosen = mask_logits[torch.arange(labels.numel(), device=labels.device), labels]  # (P, m, m)
    return F.binary_cross_entropy_with_logits(chosen, targets)


def paste_masks(masks: Tensor, boxes: Tensor, image_size: tuple[int, int], padding: int = 1) -> Tensor:
    """``(R, m, m)`` probabilities → ``(R, H, W)`` in the image.

    Each mask is padded by ``padding`` zero cells, its box widened by (m + 2·padding)/m about the
    centre and rounded to whole pixels (x0, y0, x1, y1); the padded mask is resized bilinearly
    to (y1 − y0 + 1) × (x1 − x0 + 1) and copied into the image where the two overlap.
    """
    height, width = image_size
    if masks.shape[0] == 0:
        return masks.new_zeros((0, height, width))
    m = masks.shape[-1]
    scale = (m + 2 * padding) / m
    masks = F.pad(masks, (padding,) * 4)
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale, (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    widened = torch.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], 1).long()
    pasted = masks.new_zeros((masks.shape[0], height, width))
    for index, (mask, (x0, y0, x1, y1)) in enumerate(zip(masks, widened.tolist())):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(mask[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        left, right, top, bottom = max(x0, 0), min(x1 + 1, width), max(y0, 0), min(y1 + 1, height)
        if right > left and bottom > top:
            pasted[index, top:bottom, left:right] = resized[top - y0 : bottom - y0, left - x0 : right - x0]
    return pasted
