"""COCO instance masks: polygons and RLE read through pycocotools, for Mask R-CNN data.

`read_coco_instances` reads a COCO file as `cnnkit.data.coco.read_coco` does (the same
validation, boxes and labels) and keeps each object's ``segmentation`` — polygons, uncompressed
or compressed RLE — beside its box. Masks are decoded when an image is read (``dataset[i]``
gives ``target["masks"] (G, H, W)`` bool), so a folder of large photographs costs no memory
up front; `cnnkit.detection.mask_metrics.coco_mask_map` hands the original segmentations to
pycocotools as they are.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from cnnkit.data.coco import read_coco_annotations
from cnnkit.data.detection import DetectionDataset


def segmentation_to_rle(segmentation, height: int, width: int) -> dict:
    """One COCO segmentation (a list of polygons, an uncompressed or a compressed RLE) as one
    compressed RLE of an ``height × width`` image."""
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, list):
        return coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    if isinstance(segmentation.get("counts"), list):
        return coco_mask.frPyObjects(segmentation, height, width)
    return segmentation


def decode_segmentations(segmentations: list, height: int, width: int) -> Tensor:
    """``(G, H, W)`` bool masks of COCO segmentations."""
    from pycocotools import mask as coco_mask

    masks = [coco_mask.decode(segmentation_to_rle(s, height, width)).astype(bool) for s in segmentations]
    return torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, height, width, dtype=torch.bool)


def _with_masks(image: Tensor, target: dict) -> tuple[Tensor, dict]:
    height, width = image.shape[-2:]
    target["masks"] = decode_segmentations(target["segmentation"], height, width)
    return image, target


def read_coco_instances(annotation_file: str | os.PathLike, image_dir: str | os.PathLike | None = None,
                        strict: bool = True) -> DetectionDataset:
    """`read_coco` plus each object's segmentation (``target["segmentation"]``, decoded into
    ``target["masks"]`` on access). An object without a segmentation gets its box as its mask."""
    dataset, by_image = read_coco_annotations(annotation_file, image_dir, strict=strict)
    for image_id, target in zip(dataset.image_ids, dataset.targets):
        annotations = [a for a in by_image.get(image_id, []) if not a.get("iscrowd", 0)]  # as the targets
        target["segmentation"] = [a.get("segmentation") or [_box_polygon(a["bbox"])] for a in annotations]
    return dataset.with_transform(_with_masks)


def _box_polygon(box: list[float]) -> list[float]:
    x, y, w, h = box
    return [x, y, x + w, y, x + w, y + h, x, y + h]
