"""Transforms on batches ``(B, C, H, W)``: resizing, crops, flips, normalisation, augmentation.

Every random transform draws from an explicit ``torch.Generator`` (on the CPU, whatever the
device of the batch), one draw per batch for all its images, so a training run is reproducible
and resumes exactly when the generator's state is saved. No per-sample Python: crops are one
gather, flips one ``torch.where``, random resized crops one ``grid_sample``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

PRESETS = ("none", "flip", "crop", "crop-flip", "standard")
"""Augmentation presets of :func:`augmentation`."""


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def normalize(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """Standardise each channel: ``(x − mean_c) / std_c`` for ``x`` of shape ``(B, C, H, W)``."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)[:, None, None]
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)[:, None, None]
    return (x - mean) / std


def resize(x: Tensor, size: int | Sequence[int]) -> Tensor:
    """Resize ``(C, H, W)`` or ``(B, C, H, W)`` to ``size`` (int or (H', W')) by antialiased bilinear
    interpolation, clipped to [0, 1] (interpolation can overshoot next to sharp edges)."""
    size = _pair(size)
    if tuple(x.shape[-2:]) == size:
        return x
    batch = x if x.dim() == 4 else x[None]
    out = F.interpolate(batch.float(), size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
    return out if x.dim() == 4 else out[0]


def center_crop(x: Tensor, size: int | Sequence[int]) -> Tensor:
    """The central ``size`` window of ``(B, C, H, W)``: rows from ⌊(H − h)/2⌋, columns likewise."""
    height, width = _pair(size)
    if height > x.shape[-2] or width > x.shape[-1]:
        raise ValueError(f"crop {height}×{width} is larger than the image {x.shape[-2]}×{x.shape[-1]}")
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


def random_crop(
    x: Tensor, size: int | Sequence[int], padding: int = 0, generator: torch.Generator | None = None
) -> Tensor:
    """A random ``size`` window of each image, after zero-padding every side by ``padding``.

    Offsets are uniform: top ∈ {0, …, H + 2p − h}, left ∈ {0, …, W + 2p − w}, drawn per image.
    With p = 4 and size = 32 on 32×32 images this is the CIFAR augmentation (He et al. 2016 §4.2).
    """
    height, width = _pair(size)
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    batch, _, full_height, full_width = x.shape
    if height > full_height or width > full_width:
        raise ValueError(f"crop {height}×{width} is larger than the padded image {full_height}×{full_width}")
    top = torch.randint(0, full_height - height + 1, (batch,), generator=generator).to(x.device)
    left = torch.randint(0, full_width - width + 1, (batch,), generator=generator).to(x.device)
    rows = top[:, None] + torch.arange(height, device=x.device)  # (B, h)
    cols = left[:, None] + torch.arange(width, device=x.device)  # (B, w)
    index = torch.arange(batch, device=x.device)[:, None, None]
    out = x[index, :, rows[:, :, None], cols[:, None, :]]  # (B, h, w, C): advanced indices first
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> Tensor:
    """Mirror each image left-right with probability ``p`` (one Bernoulli draw per image)."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_resized_crop(
    x: Tensor,
    size: int | Sequence[int],
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """Crop a random box of each image and resize it to ``size`` (Szegedy et al. 2015, "Inception").

    Per image: area share s ~ U(scale), aspect r with log r ~ U(log ratio); the box is
    w = √(s r)·W by h = √(s / r)·H (each clipped to the image), at a uniform position inside
    the image. The boxes are sampled bilinearly by one ``grid_sample`` call.
    """
    height, width = _pair(size)
    batch = x.shape[0]
    area = scale[0] + (scale[1] - scale[0]) * torch.rand(batch, generator=generator)
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(batch, generator=generator)
    aspect = log_ratio.exp()
    box_w = (area * aspect).sqrt().clamp(max=1.0)  # fraction of the width
    box_h = (area / aspect).sqrt().clamp(max=1.0)
    centre_x = (1 - box_w) * (2 * torch.rand(batch, generator=generator) - 1)  # in [-1, 1] coordinates
    centre_y = (1 - box_h) * (2 * torch.rand(batch, generator=generator) - 1)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = box_w, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = box_h, centre_y
    grid = F.affine_grid(theta.to(x), [batch, x.shape[1], height, width], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class Augmentation:
    """A batch augmentation preset: ``augment(x, generator) -> x`` of the same shape.

    - ``none``: identity.
    - ``flip``: random horizontal flip.
    - ``crop``: zero-pad by ⌈min(H, W)/8⌉ (4 at 32×32) and take a random H×W crop: small shifts.
    - ``crop-flip``: ``crop`` then ``flip``, the CIFAR recipe.
    - ``standard``: random resized crop (area 8-100 %, aspect 3/4-4/3) to H×W, then ``flip``.
    """

    preset: str
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown augmentation {self.preset!r}; choose one of {', '.join(PRESETS)}")

    @property
    def padding(self) -> int:
        return math.ceil(min(self.image_size) / 8)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.preset == "none":
            return x
        if self.preset in ("crop", "crop-flip"):
            x = random_crop(x, self.image_size, self.padding, generator)
        elif self.preset == "standard":
            x = random_resized_crop(x, self.image_size, generator)
        if self.preset in ("flip", "crop-flip", "standard"):
            x = random_flip(x, generator)
        return x


def augmentation(preset: str, image_size: int | Sequence[int]) -> Augmentation:
    """The augmentation ``preset`` (one of :data:`PRESETS`) for images of ``image_size``."""
    return Augmentation(preset, _pair(image_size))
