"""The simple idea: classify every pixel from the patch around it (the lecture's first answer).

A CNN classifier sees a P×P patch centred on a pixel and names that pixel's class. Sliding it
over every position of a padded image labels every pixel — correct, but the patches of
neighbouring pixels overlap in all but one row or column, and the classifier recomputes the
shared convolutions for each: H·W forward passes per image, where a fully convolutional network
(`cnnkit.segmentation.fcn`) needs one. This module is kept as that baseline and as teaching
code; ``benchmarks/segmentation.py`` measures the difference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.nn.blocks import ConvBNReLU


class PatchClassifier(nn.Module):
    """A small CNN naming the class of a patch's centre pixel: ``(N, 3, P, P) → (N, K)``.

        conv 3×3, 16 → max pool 2      (N, 16, P/2, P/2)
        conv 3×3, 32 → max pool 2      (N, 32, P/4, P/4)
        conv 3×3, 64 → global average pool → linear K      (N, K)
    """

    def __init__(self, num_classes: int, patch_size: int = 25) -> None:
        super().__init__()
        if patch_size < 5 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd and ≥ 5 (a centre pixel), got {patch_size}")
        self.patch_size = patch_size
        self.features = nn.Sequential(ConvBNReLU(3, 16, 3, padding=1), nn.MaxPool2d(2),
                                      ConvBNReLU(16, 32, 3, padding=1), nn.MaxPool2d(2),
                                      ConvBNReLU(32, 64, 3, padding=1))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, patches: Tensor) -> Tensor:
        return self.fc(self.features(patches).mean((2, 3)))

    def loss(self, patches: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
        """Cross-entropy of the centre pixels' classes ``labels (N,)``, averaged over the patches."""
        return F.cross_entropy(self(patches), labels, ignore_index=ignore_index)


def patches_at(images: Tensor, rows: Tensor, columns: Tensor, batch_index: Tensor, patch_size: int) -> Tensor:
    """The ``(M, C, P, P)`` patches centred on pixels (row, column) of ``images[batch_index]``
    (``(N, C, H, W)``, zero-padded by P // 2 so border pixels have full patches)."""
    half = patch_size // 2
    padded = F.pad(images, (half, half, half, half))
    offsets = torch.arange(patch_size, device=images.device)
    ys = (rows[:, None] + offsets)[:, :, None]  # (M, P, 1): padded row of each patch row
    xs = (columns[:, None] + offsets)[:, None, :]  # (M, 1, P)
    patches = padded[batch_index[:, None, None], :, ys, xs]  # (M, P, P, C)
    return patches.permute(0, 3, 1, 2)


def sample_patches(images: Tensor, masks: Tensor, per_image: int, patch_size: int, generator: torch.Generator,
                   ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """Training pairs: ``per_image`` random non-void pixels of each image, their patches
    ``(M, C, P, P)`` and labels ``(M,)``, on the images' device (the pixels drawn from the CPU
    ``generator``, so the same on every device)."""
    batch, rows, columns = [], [], []
    width = masks.shape[-1]
    for index, mask in enumerate(masks):
        valid = torch.nonzero(mask.flatten() != ignore_index)[:, 0]
        if valid.numel() == 0:
            continue
        chosen = valid[torch.randint(valid.numel(), (per_image,), generator=generator).to(valid.device)]
        batch.append(torch.full_like(chosen, index))
        rows.append(chosen // width)
        columns.append(chosen % width)
    batch, rows, columns = torch.cat(batch), torch.cat(rows), torch.cat(columns)
    return patches_at(images, rows, columns, batch, patch_size), masks[batch, rows, columns]


@torch.no_grad()
def sliding_window_logits(classifier: nn.Module, image: Tensor, patch_size: int, chunk: int = 4096) -> Tensor:
    """Class scores ``(K, H, W)`` of one normalised image ``(C, H, W)``: the classifier applied to
    the patch around every pixel, ``chunk`` patches per forward pass (H·W patches in all)."""
    height, width = image.shape[-2:]
    rows = torch.arange(height, device=image.device).repeat_interleave(width)
    columns = torch.arange(width, device=image.device).repeat(height)
    scores = []
    for start in range(0, height * width, chunk):
        r, c = rows[start : start + chunk], columns[start : start + chunk]
        patches = patches_at(image[None], r, c, torch.zeros_like(r), patch_size)
        scores.append(classifier(patches))
    return torch.cat(scores).T.reshape(-1, height, width)


@torch.no_grad()
def sliding_window_reference(classifier: nn.Module, image: Tensor, patch_size: int) -> Tensor:
    """The same as `sliding_window_logits` one pixel at a time, as the lecture writes it: for every
    (y, x), cut the patch out of the zero-padded image and classify it. The oracle for the tests."""
    half = patch_size // 2
    padded = F.pad(image, (half, half, half, half))
    height, width = image.shape[-2:]
    scores = None
    for y in range(height):
        for x in range(width):
            logits = classifier(padded[None, :, y : y + patch_size, x : x + patch_size])[0]
            if scores is None:
                scores = logits.new_zeros(logits.shape[0], height, width)
            scores[:, y, x] = logits
    return scores
