"""The detector's first and last stage: images in, a padded batch out; boxes back to the input.

`DetectionTransform` normalises each ``(3, H, W)`` image with the backbone's mean and std,
resizes it so that its short side is ``min_size`` without its long side passing ``max_size``
(scale = min(min_size / short, max_size / long), bilinear), pads the batch with zeros to a
common size divisible by ``size_divisible`` and scales the targets' boxes by the same factor.
`postprocess` maps detected boxes back: x by W/W', y by H/H'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.detection.structures import Detections

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageBatch:
    """``tensors (N, 3, H_pad, W_pad)`` and each image's size after resizing, before padding."""

    tensors: Tensor
    image_sizes: list[tuple[int, int]]


class DetectionTransform(nn.Module):
    def __init__(self, min_size: int = 800, max_size: int = 1333, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 size_divisible: int = 32) -> None:
        super().__init__()
        self.min_size, self.max_size, self.size_divisible = min_size, max_size, size_divisible
        self.mean, self.std = mean, std

    def forward(self, images: list[Tensor], targets: list[dict] | None = None) -> tuple[ImageBatch, list[dict] | None]:
        resized, sizes, scaled_targets = [], [], []
        for i, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"image {i}: expected (3, H, W), got {tuple(image.shape)}")
            mean = torch.as_tensor(self.mean, dtype=image.dtype, device=image.device)
            std = torch.as_tensor(self.std, dtype=image.dtype, device=image.device)
            image = (image - mean[:, None, None]) / std[:, None, None]
            height, width = image.shape[-2:]
            scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
            image = F.interpolate(image[None], size=None, scale_factor=scale, mode="bilinear",
                                  recompute_scale_factor=True, align_corners=False)[0]
            resized.append(image)
            sizes.append((image.shape[-2], image.shape[-1]))
            if targets is not None:
                target = dict(targets[i])
                target["boxes"] = scale_boxes(target["boxes"], (height, width), sizes[-1])
                scaled_targets.append(target)
        return ImageBatch(self.pad(resized), sizes), (scaled_targets if targets is not None else None)

    def pad(self, images: list[Tensor]) -> Tensor:
        """Zero-pad to the largest height and width, rounded up to ``size_divisible``."""
        height = max(image.shape[1] for image in images)
        width = max(image.shape[2] for image in images)
        stride = self.size_divisible
        height, width = int(math.ceil(height / stride) * stride), int(math.ceil(width / stride) * stride)
        batch = images[0].new_zeros((len(images), images[0].shape[0], height, width))  # (N, 3, H, W)
        for padded, image in zip(batch, images):
            padded[:, : image.shape[1], : image.shape[2]].copy_(image)
        return batch

    def postprocess(self, detections: list[Detections], image_sizes, original_sizes) -> list[Detections]:
        for detection, size, original in zip(detections, image_sizes, original_sizes):
            detection.boxes = scale_boxes(detection.boxes, size, original)
        return detections


def scale_boxes(boxes: Tensor, size: tuple[int, int], new_size: tuple[int, int]) -> Tensor:
    """Boxes of an image of ``size`` (H, W) on the same image resized to ``new_size``."""
    ratio_h = torch.tensor(new_size[0], dtype=torch.float32, device=boxes.device) / torch.tensor(
        size[0], dtype=torch.float32, device=boxes.device)
    ratio_w = torch.tensor(new_size[1], dtype=torch.float32, device=boxes.device) / torch.tensor(
        size[1], dtype=torch.float32, device=boxes.device)
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack((x1 * ratio_w, y1 * ratio_h, x2 * ratio_w, y2 * ratio_h), dim=1)
