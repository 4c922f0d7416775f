"""Digit scenes: a built-in, offline detection dataset that trains in minutes on a CPU.

Each scene is a dark square canvas with 1 to ``max_digits`` real handwritten digits from
scikit-learn's ``load_digits`` (8×8 pixels, 1797 samples from 43 writers) scaled to a random
side of ``min_size``..``max_size`` pixels and placed at a random position, not overlapping
earlier digits by more than a little. A digit's box is the tight box of its ink (pixels above
a quarter of full intensity), its mask the ink itself. Categories are "0".."9".

The splits draw their digits from disjoint thirds of ``load_digits`` (test digits are never seen
in training) and their layouts from separate seeds, so train, val and test are reproducible and
independent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.data.detection import DetectionDataset

SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SIZES = {"train": 600, "val": 100, "test": 200}
INK_THRESHOLD = 0.25


def digit_scenes(
    split: str = "train", count: int | None = None, canvas: int = 128, min_size: int = 20, max_size: int = 48,
    max_digits: int = 4, seed: int = 0,
) -> DetectionDataset:
    """``count`` scenes of ``split`` (train/val/test; default 600/100/200) as a `DetectionDataset`
    with images ``(3, canvas, canvas)`` in [0, 1] and targets with boxes, labels 1..10 (label
    k + 1 is digit k) and masks ``(G, canvas, canvas)``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not 4 <= min_size <= max_size <= canvas:
        raise ValueError(f"need 4 ≤ min_size ≤ max_size ≤ canvas, got {min_size}, {max_size}, {canvas}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float() / 16.0  # (1797, 8, 8) in [0, 1]
    classes = torch.from_numpy(digits.target).long()
    pool = torch.arange(len(pixels))[SPLITS[split] :: 3]
    generator = torch.Generator().manual_seed(seed * 1000 + SPLITS[split] + 17)
    count = DEFAULT_SIZES[split] if count is None else count
    images, targets = [], []
    for _ in range(count):
        image, target = _scene(pixels, classes, pool, canvas, min_size, max_size, max_digits, generator)
        images.append(image)
        targets.append(target)
    return DetectionDataset(images, targets, [str(d) for d in range(10)], name=f"digit-scenes/{split}")


def _scene(pixels, classes, pool, canvas, min_size, max_size, max_digits, generator):
    canvas_image = torch.rand(1, canvas, canvas, generator=generator) * 0.1  # faint noise background
    wanted = int(torch.randint(1, max_digits + 1, (1,), generator=generator))
    boxes, labels, masks = [], [], []
    for _ in range(wanted * 10):  # rejection sampling of free positions
        if len(boxes) == wanted:
            break
        size = int(torch.randint(min_size, max_size + 1, (1,), generator=generator))
        top, left = (int(v) for v in torch.randint(0, canvas - size + 1, (2,), generator=generator))
        box = torch.tensor([left, top, left + size, top + size], dtype=torch.float32)
        if boxes and _overlap(box, torch.stack(boxes)).max() > 0.1:
            continue
        index = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        digit = F.interpolate(pixels[index][None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        brightness = 0.6 + 0.4 * float(torch.rand(1, generator=generator))
        mask = torch.zeros(canvas, canvas, dtype=torch.bool)
        mask[top : top + size, left : left + size] = digit > INK_THRESHOLD
        if not mask.any():
            continue
        region = canvas_image[0, top : top + size, left : left + size]
        canvas_image[0, top : top + size, left : left + size] = torch.maximum(region, digit.clamp(0, 1) * brightness)
        rows, columns = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        ink_box = torch.tensor([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], dtype=torch.float32)
        boxes.append(box)
        labels.append(int(classes[index]) + 1)
        masks.append((mask, ink_box))
    target = {
        "boxes": torch.stack([ink for _, ink in masks]),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.stack([mask for mask, _ in masks]),
    }
    return canvas_image.expand(3, -1, -1).clone(), target


def _overlap(box, boxes):
    """Intersection over the smaller box's area, of ``box`` (4,) with each of ``boxes`` (N, 4)."""
    low = torch.maximum(box[:2], boxes[:, :2])
    high = torch.minimum(box[2:], boxes[:, 2:])
    intersection = (high - low).clamp(min=0).prod(1)
    area = (box[2:] - box[:2]).prod()
    return intersection / area
