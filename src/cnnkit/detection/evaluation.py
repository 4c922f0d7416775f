"""Evaluating a detector on a dataset: detections in fixed batches, then COCO and VOC figures.

Batch b holds images [b·B, (b+1)·B) whoever predicts it, so an evaluation split over processes
by batch (the detection task's under DDP: process r takes batches r, r+W, …) gathers exactly
the detections, bit for bit, of one process predicting them all: the same images are padded
together and pass the network together. Images go to the device; detections come back to the
CPU, Mask R-CNN's masks binarised at 0.5 (Mask R-CNN §3), one byte a pixel. Proposals kept in
the targets (`cnnkit.detection.proposals.attach_proposals`) are used instead of searching again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from cnnkit.data.detection import DetectionDataset, check_categories, collate
from cnnkit.detection.mask_metrics import coco_mask_map
from cnnkit.detection.metrics import coco_map, voc_ap
from cnnkit.detection.structures import Detections

MASK_THRESHOLD = 0.5


@dataclass
class PredictedBatch:
    """The detections of one batch's images, in order, and the seconds the batch took."""

    detections: list[Detections]
    seconds: float


@torch.no_grad()
def predict_batches(model, dataset: DetectionDataset, numbers: Iterable[int], batch_size: int = 8,
                    device: torch.device | str = "cpu") -> list[PredictedBatch]:
    """The batches ``numbers`` of ``dataset`` (batch b: images [b·B, (b+1)·B)) through
    ``model.predict`` on ``device``; seconds counted from the images' transfer to the detections'
    return to the CPU."""
    results = []
    for number in numbers:
        images, targets = batch_of(dataset, number, batch_size)
        started = time.perf_counter()
        images = [image.to(device, non_blocking=True) for image in images]
        if all("proposals" in target for target in targets):
            found = model.predict(images, [target["proposals"] for target in targets])
        else:
            found = model.predict(images)
        results.append(PredictedBatch([_on_cpu(detections) for detections in found], time.perf_counter() - started))
    return results


def batch_of(dataset: DetectionDataset, number: int, batch_size: int) -> tuple[list, list[dict]]:
    """Batch ``number``: the images and targets [number·B, (number+1)·B) of ``dataset``."""
    return collate([dataset[i] for i in range(number * batch_size, min((number + 1) * batch_size, len(dataset)))])


def _on_cpu(found: Detections) -> Detections:
    masks = None if found.masks is None else (found.masks >= MASK_THRESHOLD).cpu()
    return Detections(found.boxes.cpu(), found.scores.cpu(), found.labels.cpu(), masks)


def detection_figures(dataset: DetectionDataset, batches: list[PredictedBatch]) -> dict:
    """COCO mAP figures (`coco_map`), VOC AP@0.5 per class (``voc_ap50``) and its mean over the
    classes present (``voc_map50``), seconds per image and the image count."""
    found = _detections(batches)
    result = coco_map(dataset, found)
    per_class = voc_ap(dataset, found)
    present = [ap for ap in per_class.values() if not math.isnan(ap)]
    return {**result, "voc_map50": sum(present) / max(1, len(present)), "voc_ap50": per_class,
            **_speed(dataset, batches)}


def instance_figures(dataset: DetectionDataset, batches: list[PredictedBatch]) -> dict:
    """COCO mask AP and box AP figures (`coco_mask_map`), seconds per image and the image count."""
    return {**coco_mask_map(dataset, _detections(batches), MASK_THRESHOLD), **_speed(dataset, batches)}


def evaluate_in_batches(model, dataset: DetectionDataset, figures: Callable, batch_size: int = 8,
                        device: torch.device | str = "cpu") -> dict:
    """``figures(dataset, batches)`` of ``model`` (moved to ``device``) over all of ``dataset``;
    ValueError naming both lists when the dataset's categories are not the model's."""
    check_categories(dataset, model.categories)
    model.to(device)
    return figures(dataset, predict_batches(model, dataset, range(math.ceil(len(dataset) / batch_size)), batch_size,
                                            device))


def _detections(batches: list[PredictedBatch]) -> list[Detections]:
    return [found for batch in batches for found in batch.detections]


def _speed(dataset: DetectionDataset, batches: list[PredictedBatch]) -> dict:
    return {"seconds_per_image": sum(batch.seconds for batch in batches) / max(1, len(dataset)),
            "images": len(dataset)}
