"""Anchors: reference boxes of several scales and aspect ratios at every feature-map cell
(Faster R-CNN §3.1.1, "Anchors"; FPN §4.1 assigns one scale per pyramid level).

For sizes s and aspect ratios r = h/w, the base anchors centred on the origin are

    h = s √r,  w = s / √r,  box = round((−w/2, −h/2, w/2, h/2))

(A = len(sizes)·len(ratios) per cell, ratio-major), and the anchors of a feature map with
stride (s_y, s_x) are the base anchors shifted to (j·s_x, i·s_y) for every cell (i, j),
laid out cell by cell: (H·W·A, 4).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def base_anchors(sizes, aspect_ratios, dtype=torch.float32, device=None) -> Tensor:
    """The (A, 4) anchors of one cell, centred on (0, 0)."""
    scales = torch.as_tensor(sizes, dtype=dtype, device=device)
    ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def anchor_grid(cell_anchors: Tensor, feature_size: tuple[int, int], stride: tuple[int, int]) -> Tensor:
    """Anchors over a feature map: ``(H·W·A, 4)``, cell (i, j) at pixel (j·stride_x, i·stride_y)."""
    height, width = feature_size
    device = cell_anchors.device
    shifts_x = torch.arange(0, width, dtype=torch.int32, device=device) * stride[1]
    shifts_y = torch.arange(0, height, dtype=torch.int32, device=device) * stride[0]
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)  # (H·W, 4)
    return (shifts.view(-1, 1, 4) + cell_anchors.view(1, -1, 4)).reshape(-1, 4)


class AnchorGenerator(nn.Module):
    """Anchors for each feature map of a batch. ``sizes[l]`` and ``aspect_ratios[l]`` belong to
    level l. The stride of a level is the padded batch size divided by its feature size."""

    def __init__(self, sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5) -> None:
        super().__init__()
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"{len(sizes)} levels of sizes but {len(aspect_ratios)} of aspect ratios")
        self.sizes, self.aspect_ratios = sizes, aspect_ratios
        self.cell_anchors = [base_anchors(s, r) for s, r in zip(sizes, aspect_ratios)]

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def forward(self, batch_size: tuple[int, int], feature_sizes: list[tuple[int, int]], num_images: int,
                dtype=torch.float32, device=None) -> list[Tensor]:
        """One ``(Σ_l H_l·W_l·A_l, 4)`` tensor per image (the same for all images of the batch)."""
        if len(feature_sizes) != len(self.cell_anchors):
            raise ValueError(f"{len(feature_sizes)} feature maps but anchors for {len(self.cell_anchors)} levels")
        levels = []
        for cell, size in zip(self.cell_anchors, feature_sizes):
            stride = (batch_size[0] // size[0], batch_size[1] // size[1])
            levels.append(anchor_grid(cell.to(dtype=dtype, device=device), size, stride))
        anchors = torch.cat(levels)
        return [anchors for _ in range(num_images)]
