"""Box coding: boxes as offsets from reference boxes (R-CNN appendix C; Faster R-CNN eq. 2).

For a reference box with centre (x_a, y_a), width w_a and height h_a (an anchor or a proposal)
and a box (x, y, w, h), the regression targets are

    t_x = w_x (x − x_a) / w_a      t_y = w_y (y − y_a) / h_a
    t_w = w_w log(w / w_a)         t_h = w_h log(h / h_a)

with weights (w_x, w_y, w_w, w_h): (1, 1, 1, 1) for the RPN, (10, 10, 5, 5) for the RoI heads
(so the targets have roughly unit variance). `decode_boxes` inverts it, clamping t_w, t_h at
log(1000/16) so that exp cannot overflow. Boxes are (x1, y1, x2, y2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BBOX_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    """`encode_boxes` / `decode_boxes` with fixed ``weights``."""

    def __init__(self, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> None:
        self.weights = weights

    def encode(self, boxes: Tensor, references: Tensor) -> Tensor:
        return encode_boxes(boxes, references, self.weights)

    def decode(self, deltas: Tensor, references: Tensor) -> Tensor:
        return decode_boxes(deltas, references, self.weights)


def encode_boxes(boxes: Tensor, references: Tensor, weights=(1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Targets ``(R, 4)`` = (t_x, t_y, t_w, t_h) of ``boxes (R, 4)`` relative to ``references (R, 4)``."""
    wx, wy, ww, wh = weights
    ref_w = references[:, 2] - references[:, 0]
    ref_h = references[:, 3] - references[:, 1]
    ref_x = references[:, 0] + 0.5 * ref_w
    ref_y = references[:, 1] + 0.5 * ref_h
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    x = boxes[:, 0] + 0.5 * w
    y = boxes[:, 1] + 0.5 * h
    return torch.stack((wx * (x - ref_x) / ref_w, wy * (y - ref_y) / ref_h,
                        ww * torch.log(w / ref_w), wh * torch.log(h / ref_h)), dim=1)


def decode_boxes(deltas: Tensor, references: Tensor, weights=(1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Boxes from ``deltas (R, 4K)`` relative to ``references (R, 4)``: ``(R, K, 4)``.

    K > 1 when a head predicts one box per class (deltas laid out class by class).
    """
    references = references.to(deltas.dtype)
    wx, wy, ww, wh = weights
    ref_w = references[:, 2] - references[:, 0]
    ref_h = references[:, 3] - references[:, 1]
    ref_x = references[:, 0] + 0.5 * ref_w
    ref_y = references[:, 1] + 0.5 * ref_h
    dx = deltas[:, 0::4] / wx  # (R, K)
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=BBOX_CLIP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=BBOX_CLIP)
    x = dx * ref_w[:, None] + ref_x[:, None]
    y = dy * ref_h[:, None] + ref_y[:, None]
    half_w = 0.5 * torch.exp(dw) * ref_w[:, None]
    half_h = 0.5 * torch.exp(dh) * ref_h[:, None]
    return torch.stack((x - half_w, y - half_h, x + half_w, y + half_h), dim=2)  # (R, K, 4)


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clamp ``boxes (..., 4)`` into an image of ``size`` (height, width)."""
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def small_boxes_removed(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both ≥ ``min_size``."""
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((widths >= min_size) & (heights >= min_size))[0]
