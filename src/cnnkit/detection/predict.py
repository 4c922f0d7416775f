"""Detecting objects in image files: open a detector, evaluate it, draw labelled boxes, write JSON.

`load_detector` reads a run folder or checkpoint of `cnnkit detect train` (also those written
before the training engine); `cnnkit.inference.open_model` also opens a weights file written
for torchvision's ``fasterrcnn_resnet50_fpn`` (its class count read from the file, categories
named by their COCO ids). Nothing here imports training code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import draw_bounding_boxes

from cnnkit.data.images import read_image, save_image
from cnnkit.detection.checkpoints import DETECTION, detector_from, read_detector_checkpoint
from cnnkit.data.detection import DetectionDataset
from cnnkit.detection.evaluation import detection_figures, evaluate_in_batches
from cnnkit.detection.structures import Detections
from cnnkit.files import atomic_write

def load_detector(path: str | os.PathLike):
    """The detector of a run folder (its ``best.pt``) or checkpoint of `cnnkit detect train`, in
    eval mode on the CPU. Raises FileNotFoundError or ValueError naming the file."""
    return detector_from(read_detector_checkpoint(path, DETECTION))


def evaluate_detector(model, dataset: DetectionDataset, batch_size: int = 8, device: torch.device | str = "cpu") -> dict:
    """``model`` (moved to ``device``) on ``dataset``: COCO mAP figures, VOC AP@0.5 per class
    (``voc_ap50``) and its mean (``voc_map50``), ``seconds_per_image`` and ``images``
    (`cnnkit.detection.evaluation.detection_figures`)."""
    return evaluate_in_batches(model, dataset, detection_figures, batch_size, device)


def draw_detections(image: Tensor, detections: Detections, categories: list[str]) -> Tensor:
    """``image (3, H, W)`` in [0, 1] with each box drawn and labelled "name score"."""
    labels = [f"{categories[k - 1]} {s:.2f}" for k, s in zip(detections.labels.tolist(), detections.scores.tolist())]
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    width = max(1, round(min(image.shape[-2:]) / 200))
    drawn = draw_bounding_boxes(pixels, detections.boxes, labels, colors="red", width=width)
    return drawn.float() / 255


def predict_files(model, paths: list[str | os.PathLike], output: str | os.PathLike | None = None,
                  score_threshold: float = 0.5) -> list[dict]:
    """Detect objects in each image file, on the device the model is on; with ``output``, write
    ``OUTPUT/NAME.png`` with the boxes drawn and ``OUTPUT/detections.json``. Returns COCO result
    records (image_id is the file's position from 1) with the file name added."""
    records = []
    category_ids = list(range(1, len(model.categories) + 1))
    device = next(model.parameters()).device
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
    for image_id, path in enumerate(paths, start=1):
        image = read_image(path, gray=False)
        detections = model.predict([image.to(device)])[0].above(score_threshold).to("cpu")
        for record in detections.to_coco(image_id, category_ids):
            records.append({**record, "category": model.categories[record["category_id"] - 1], "file_name": str(path)})
        if output is not None:
            save_image(draw_detections(image, detections, model.categories), Path(output) / f"{Path(path).stem}.png")
    if output is not None:
        with atomic_write(Path(output) / "detections.json") as temporary:
            temporary.write_text(json.dumps(records, indent=1))
    return records
