"""The three splits of a detection run: train, validation and test, always different images.

Digit scenes generate each split from its own third of the digits and its own seed
(`cnnkit.data.scenes`). A COCO file is split by a seeded permutation of its images:
10 % validation, 10 % test (at least one image each) and the rest training, so the best epoch
is chosen on images the reported test figures never saw.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from cnnkit.data.coco import read_coco
from cnnkit.data.detection import DetectionDataset
from cnnkit.data.scenes import digit_scenes

HELD_OUT = 0.1
"""The share of a COCO file's images in each of validation and test."""


class DetectionSplits(NamedTuple):
    train: DetectionDataset
    val: DetectionDataset
    test: DetectionDataset


def split_images(dataset: DetectionDataset, seed: int, counts=(None, None, None)) -> DetectionSplits:
    """``dataset`` split by the permutation of its images seeded with ``seed``: the first
    max(1, ⌊N/10⌋) validate, the next max(1, ⌊N/10⌋) test, the rest train; ``counts`` caps each
    split (train, val, test; None: all). Raises ValueError naming the file below 3 images."""
    if len(dataset) < 3:
        raise ValueError(f"{dataset.name}: {len(dataset)} image(s); a run needs at least 3 (train, validation, test)")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    held_out = max(1, int(len(dataset) * HELD_OUT))
    parts = (order[2 * held_out :], order[:held_out], order[held_out : 2 * held_out])
    return DetectionSplits(*(dataset.subset(part[:count]) for part, count in zip(parts, counts)))


def load_splits(config, read=read_coco) -> DetectionSplits:
    """The splits of ``config`` (its data, image_dir, lenient, seed and train/val/test_images):
    digit scenes, or the COCO file that ``read(annotation_file, image_dir, strict=...)`` reads."""
    counts = (config.train_images, config.val_images, config.test_images)
    if config.data == "digit-scenes":
        return DetectionSplits(*(digit_scenes(split, count, seed=config.seed)
                                 for split, count in zip(DetectionSplits._fields, counts)))
    return split_images(read(config.data, config.image_dir, strict=not config.lenient), config.seed, counts)
