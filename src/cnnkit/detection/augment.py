"""Augmentation that keeps boxes (and masks) right, built from torchvision.transforms.v2.

The image becomes a ``tv_tensors.Image``, the boxes ``tv_tensors.BoundingBoxes`` (XYXY, with
the canvas size) and the masks ``tv_tensors.Mask``, so every v2 transform moves them together;
boxes that a crop leaves smaller than a pixel are removed with their labels
(``SanitizeBoundingBoxes``).
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def box_augmentation(flip: bool = True, scale: tuple[float, float] = (0.75, 1.25), crop: bool = True) -> "BoxAugmentation":
    """Random horizontal flip (leave it off for digits and text: a flipped 2 is no 2), random
    rescale by a factor in ``scale``, and a random crop back to at most the original size."""
    steps = []
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if scale != (1.0, 1.0):
        steps.append(v2.RandomAffine(degrees=0, scale=scale))
    if crop:
        steps.append(v2.RandomApply([v2.RandomIoUCrop(min_scale=0.5, sampler_options=[0.3, 0.5, 0.7, 0.9, 1.0])], p=0.3))
    steps.append(v2.SanitizeBoundingBoxes(min_size=1.0))
    return BoxAugmentation(v2.Compose(steps))


class BoxAugmentation:
    """``(image (3, H, W), target) -> (image, target)`` applying a v2 transform to both."""

    def __init__(self, transform: v2.Transform) -> None:
        self.transform = transform

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        size = tuple(image.shape[-2:])
        wrapped = {
            "boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=size),
            "labels": target["labels"],
        }
        if "masks" in target:
            wrapped["masks"] = tv_tensors.Mask(target["masks"])
        image, wrapped = self.transform(tv_tensors.Image(image), wrapped)
        out = {key: value for key, value in target.items() if key not in wrapped}
        out.update({key: value.as_subclass(torch.Tensor) for key, value in wrapped.items()})
        return image.as_subclass(torch.Tensor), out

    def __repr__(self) -> str:
        return repr(self.transform)
