"""A detection dataset: images, their boxes and labels, and the categories they name.

Built-in scenes hold their images in memory as tensors; COCO folders keep file paths and read
each image when asked (`cnnkit.data.images.read_image`, with its decompression-bomb and
corrupt-file checks). Either way ``dataset[i]`` is ``(image (3, H, W) float in [0, 1], target)``
with target ``{"boxes": (G, 4) xyxy float, "labels": (G,) int64 in 1..K}`` (and ``"masks"``
where the dataset has them), and ``dataset.categories`` names labels 1..K.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cnnkit.data.images import read_image


@dataclass
class DetectionDataset:
    """Images with boxes. ``categories[k - 1]`` names label k; ``category_ids[k - 1]`` is its id in
    the COCO file (1..K for built-in data); ``image_ids[i]`` is image i's COCO id. ``images`` holds
    ``(3, H, W)`` tensors or paths read on access. ``problems`` lists what a lenient read dropped.
    ``transform(image, target) -> (image, target)`` is applied on access (augmentation)."""

    images: list
    targets: list[dict]
    categories: list[str]
    category_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    name: str = "detection"
    problems: list[str] = field(default_factory=list)
    transform: object = None

    def __post_init__(self) -> None:
        if not self.category_ids:
            self.category_ids = list(range(1, len(self.categories) + 1))
        if not self.image_ids:
            self.image_ids = list(range(1, len(self.images) + 1))
        if len(self.images) != len(self.targets):
            raise ValueError(f"{len(self.images)} images but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def on_disk(self) -> bool:
        """Whether the images are files read on access (COCO) rather than tensors in memory."""
        return bool(self.images) and isinstance(self.images[0], (str, os.PathLike))

    @property
    def num_classes(self) -> int:
        """K + 1: the categories and the background."""
        return len(self.categories) + 1

    def image(self, index: int) -> Tensor:
        image = self.images[index]
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image, gray=False)
        return image.float() if image.dtype != torch.uint8 else image.float() / 255

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        image, target = self.image(index), dict(self.targets[index])
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def with_transform(self, transform) -> DetectionDataset:
        return DetectionDataset(self.images, self.targets, self.categories, self.category_ids, self.image_ids,
                                self.name, self.problems, transform)

    def subset(self, indices) -> DetectionDataset:
        indices = list(indices)
        return DetectionDataset([self.images[i] for i in indices], [self.targets[i] for i in indices],
                                self.categories, self.category_ids, [self.image_ids[i] for i in indices],
                                self.name, self.problems, self.transform)

    def image_size(self, index: int) -> tuple[int, int]:
        image = self.images[index]
        if isinstance(image, (str, os.PathLike)):
            return tuple(self.targets[index]["size"])
        return tuple(image.shape[-2:])


def check_categories(dataset: DetectionDataset, model_categories: list[str]) -> None:
    """Raise ValueError unless the dataset's categories equal the model's, in order.

    A class map that does not match the model's head is the usual cause of an mAP of zero, so a
    mismatch fails loudly, naming both lists.
    """
    if list(dataset.categories) != list(model_categories):
        raise ValueError(
            f"{dataset.name}: categories {list(dataset.categories)} do not match the model's "
            f"{list(model_categories)}; train a model on these categories or pass matching data"
        )


def collate(batch: list[tuple[Tensor, dict]]) -> tuple[list[Tensor], list[dict]]:
    """A batch as two lists: detection images differ in size, so they are batched later by the
    detector's transform (padding to a common size)."""
    return [image for image, _ in batch], [target for _, target in batch]

