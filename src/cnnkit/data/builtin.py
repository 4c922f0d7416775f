"""Built-in datasets that need no download: real digits and faces, and generated shapes.

- ``digits``: scikit-learn's 1,797 real 8×8 handwritten digits (UCI optdigits), 10 classes. The
  integer values 0-16 are scaled to [0, 1] and the images upsampled by bilinear interpolation
  to 28×28 by default — the size of MNIST and of the sample network's default input; pass
  ``image_size=32`` for LeNet-5. Recommended augmentation: ``none``. The digits are centred and
  size-normalised, like the test images; flips would change them, and even the ``crop`` shifts
  (±4 px at 28) cost accuracy: the default 12-epoch sample-network run reached 98.1 % test
  accuracy with ``crop`` and 99.3 % with ``none`` (seed 0).
- ``faces``: scikit-image's ``lfw_subset``, 100 face and 100 non-face 25×25 grayscale patches
  (Labeled Faces in the Wild), 2 classes, native size 25×25. Recommended: ``flip``.
- ``shapes``: 3,000 generated 32×32 RGB images (1,000 per class) of one circle, square or
  triangle with random size, position, rotation and colour on a random background with a
  brightness gradient and noise; the shape's colour always differs clearly from the
  background. Drawn at the requested size with 2×2 supersampled edges. Recommended:
  ``crop-flip``.

Each has a fixed stratified train/validation/test split of 70/15/15 %, the same on every call
(:data:`BUILTIN_SEED`), so results on them are comparable between runs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cnnkit.data.dataset import Dataset, ImageSet, build_dataset, split_image_set
from cnnkit.data.transforms import resize

BUILTIN_SEED = 0
"""Seed of the built-in datasets' splits and of the shapes generator: fixed, never varied."""

DIGIT_SIZE = 28
SHAPE_CLASSES = ("circle", "square", "triangle")
SHAPES_PER_CLASS = 1000


def _square_size(image_size: int | tuple[int, int] | None, default: int) -> tuple[int, int]:
    if image_size is None:
        return (default, default)
    if isinstance(image_size, int):
        return (image_size, image_size)
    return (int(image_size[0]), int(image_size[1]))


def load_digits(image_size: int | tuple[int, int] | None = None) -> Dataset:
    """scikit-learn's 1,797 handwritten digits, (1, 28, 28) float32 in [0, 1] by default."""
    from sklearn.datasets import load_digits as sklearn_digits

    size = _square_size(image_size, DIGIT_SIZE)
    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    images = resize(images, size).contiguous()  # (1797, 1, H, W), float32 kept: 17 grey levels interpolated
    everything = ImageSet(torch.from_numpy(bunch.target), images=images)
    splits = split_image_set(everything, BUILTIN_SEED)
    classes = [str(digit) for digit in range(10)]
    return build_dataset("digits", classes, splits, augmentation="none", source="sklearn.datasets.load_digits")


def load_faces(image_size: int | tuple[int, int] | None = None) -> Dataset:
    """scikit-image's 100 face and 100 non-face patches, (1, 25, 25) by default; class 0 = face."""
    import skimage.data

    size = _square_size(image_size, 25)
    patches = skimage.data.lfw_subset()  # (200, 25, 25) float64 in [0, 1]: 100 faces, then 100 non-faces
    images = resize(torch.from_numpy(patches.astype(np.float32))[:, None], size).contiguous()
    labels = torch.cat([torch.zeros(100, dtype=torch.int64), torch.ones(100, dtype=torch.int64)])
    splits = split_image_set(ImageSet(labels, images=images), BUILTIN_SEED)
    return build_dataset("faces", ["face", "non-face"], splits, augmentation="flip", source="skimage.data.lfw_subset")


def _shape_masks(labels: Tensor, size: tuple[int, int], generator: torch.Generator) -> Tensor:
    """Coverage in [0, 1] of one shape per image, ``(N, 1, H, W)``, drawn at 2× and averaged 2×2.

    Each shape has centre c, "radius" r (circumradius for squares and triangles) and rotation θ;
    a pixel p lies inside when, with q = R(−θ)(p − c): circle |q| ≤ r; square |q_x|, |q_y| ≤ r/√2;
    triangle: on the inner side of the three edges at distance r/2 from c (an equilateral
    triangle of circumradius r).
    """
    n = len(labels)
    height, width = size[0] * 2, size[1] * 2
    side = min(height, width)
    radius = (0.18 + 0.2 * torch.rand(n, generator=generator)) * side  # (N,)
    margin = radius * 0.8
    cy = margin + torch.rand(n, generator=generator) * (height - 2 * margin)
    cx = margin + torch.rand(n, generator=generator) * (width - 2 * margin)
    theta = torch.rand(n, generator=generator) * 2 * math.pi
    ys = torch.arange(height, dtype=torch.float32)[None, :, None] + 0.5 - cy[:, None, None]  # (N, H, 1)
    xs = torch.arange(width, dtype=torch.float32)[None, None, :] + 0.5 - cx[:, None, None]  # (N, 1, W)
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
    qx, qy = cos * xs + sin * ys, -sin * xs + cos * ys  # (N, H, W) rotated coordinates
    r = radius[:, None, None]
    circle = qx.square() + qy.square() <= r.square()
    square = (qx.abs() <= r / math.sqrt(2)) & (qy.abs() <= r / math.sqrt(2))
    triangle = torch.ones_like(circle)
    for k in range(3):  # edge normals at angles 90°, 210°, 330°
        angle = math.pi / 2 + k * 2 * math.pi / 3
        triangle &= qx * math.cos(angle) + qy * math.sin(angle) <= r / 2
    label = labels[:, None, None]
    masks = torch.where(label == 0, circle, torch.where(label == 1, square, triangle)).float()
    return F.avg_pool2d(masks[:, None], 2)  # (N, 1, H/2, W/2)


def generate_shapes(labels: Tensor, size: tuple[int, int] = (32, 32), seed: int = BUILTIN_SEED) -> Tensor:
    """Images ``(N, 3, H, W)`` float32 in [0, 1] of the shapes ``labels`` (0 circle, 1 square, 2 triangle).

    Background: a random colour plus a linear brightness gradient and Gaussian noise (σ = 0.03);
    foreground: a random colour at least 0.35 away (max over channels) from the background colour.
    """
    generator = torch.Generator().manual_seed(seed)
    n = len(labels)
    coverage = _shape_masks(labels, size, generator)
    background = torch.rand(n, 3, generator=generator)
    foreground = torch.rand(n, 3, generator=generator)
    for _ in range(20):  # resample colours too close to the background
        close = (foreground - background).abs().amax(1) < 0.35
        if not close.any():
            break
        foreground[close] = torch.rand(int(close.sum()), 3, generator=generator)
    foreground = torch.where(((foreground - background).abs().amax(1) < 0.35)[:, None], 1 - background, foreground)
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    ys = torch.linspace(-0.5, 0.5, size[0])[None, :, None]
    xs = torch.linspace(-0.5, 0.5, size[1])[None, None, :]
    gradient = 0.15 * (angle.cos()[:, None, None] * xs + angle.sin()[:, None, None] * ys)  # (N, H, W)
    noise = 0.03 * torch.randn(n, 3, *size, generator=generator)
    back = background[:, :, None, None] + gradient[:, None] + noise  # (N, 3, H, W)
    front = foreground[:, :, None, None].expand(-1, -1, *size)
    return (back * (1 - coverage) + front * coverage).clamp_(0, 1)


def load_shapes(image_size: int | tuple[int, int] | None = None) -> Dataset:
    """3,000 generated 32×32 RGB images of circles, squares and triangles, held as uint8."""
    size = _square_size(image_size, 32)
    labels = torch.arange(len(SHAPE_CLASSES)).repeat_interleave(SHAPES_PER_CLASS)
    images = torch.cat([generate_shapes(chunk, size, BUILTIN_SEED + i) for i, chunk in enumerate(labels.split(500))])
    images = images.mul(255).round_().to(torch.uint8)
    splits = split_image_set(ImageSet(labels, images=images), BUILTIN_SEED)
    return build_dataset("shapes", SHAPE_CLASSES, splits, augmentation="crop-flip", source="generated")


BUILTINS = {"digits": load_digits, "faces": load_faces, "shapes": load_shapes}
"""Built-in datasets by name: each a function of ``image_size``."""
