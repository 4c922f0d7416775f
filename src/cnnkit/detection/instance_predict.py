"""Instance segmentation of image files: open a Mask R-CNN, evaluate it, outline labelled masks,
write the masks as COCO JSON.

`load_mask_rcnn` reads a run folder or checkpoint of Mask R-CNN training (also those written
before the training engine); `cnnkit.inference.open_model` also opens a state dict written for
torchvision's ``maskrcnn_resnet50_fpn``. Nothing here imports training code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from cnnkit.data.images import read_image, save_image
from cnnkit.detection.checkpoints import (
    INSTANCES,
    detector_from,
    read_detector_checkpoint,
)
from cnnkit.data.detection import DetectionDataset
from cnnkit.detection.evaluation import evaluate_in_batches, instance_figures
from cnnkit.detection.mask_metrics import encode_masks
from cnnkit.detection.structures import Detections
from cnnkit.files import atomic_write

def load_mask_rcnn(path: str | os.PathLike):
    """The Mask R-CNN of a run folder (its ``best.pt``) or checkpoint, in eval mode on the CPU.
    Raises FileNotFoundError or ValueError naming the file."""
    return detector_from(read_detector_checkpoint(path, INSTANCES))


def evaluate_mask_rcnn(model, dataset: DetectionDataset, batch_size: int = 8, device: torch.device | str = "cpu") -> dict:
    """``model`` (moved to ``device``) on ``dataset``: COCO mask AP and box AP figures
    (``mask_map``, ``mask_map50``, …, ``box_map``, …), ``seconds_per_image`` and ``images``."""
    return evaluate_in_batches(model, dataset, instance_figures, batch_size, device)


def draw_instances(image: Tensor, detections: Detections, categories: list[str]) -> Tensor:
    """``image (3, H, W)`` in [0, 1] with each instance's mask (≥ 0.5) filled translucently in its
    own colour, its outline drawn, and its box labelled "name score"."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    if len(detections) == 0:
        return image
    masks = detections.masks >= 0.5
    colours = [tuple(int(c) for c in torch.tensor([(37 * k) % 255, (97 * k) % 255, (173 * k) % 255]).tolist())
               for k in range(1, len(detections) + 1)]
    filled = draw_segmentation_masks(pixels, masks, alpha=0.45, colors=colours)
    outside_near = torch.nn.functional.max_pool2d((~masks[:, None]).float(), 3, 1, 1)[:, 0] > 0
    outlines = masks & outside_near  # mask pixels next to a pixel outside the mask
    filled = draw_segmentation_masks(filled, outlines, alpha=1.0, colors=colours)
    labels = [f"{categories[k - 1]} {s:.2f}" for k, s in zip(detections.labels.tolist(), detections.scores.tolist())]
    drawn = draw_bounding_boxes(filled, detections.boxes, labels, colors=colours, width=1)
    return drawn.float() / 255


def predict_instances(model, paths: list[str | os.PathLike], output: str | os.PathLike | None = None,
                      score_threshold: float = 0.5) -> list[dict]:
    """Detect and segment instances in each image file, on the device the model is on; with
    ``output``, write ``NAME_instances.png`` and ``instances.json`` (COCO results with RLE
    ``segmentation``, image_id = position from 1, plus the file name). Returns the records."""
    records = []
    category_ids = list(range(1, len(model.categories) + 1))
    device = next(model.parameters()).device
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
    for image_id, path in enumerate(paths, start=1):
        image = read_image(path, gray=False)
        found = model.predict([image.to(device)])[0].above(score_threshold).to("cpu")
        for record, rle in zip(found.to_coco(image_id, category_ids), encode_masks(found.masks >= 0.5)):
            records.append({**record, "segmentation": rle, "category": model.categories[record["category_id"] - 1],
                            "file_name": str(path)})
        if output is not None:
            save_image(draw_instances(image, found, model.categories), Path(output) / f"{Path(path).stem}_instances.png")
    if output is not None:
        with atomic_write(Path(output) / "instances.json") as temporary:
            temporary.write_text(json.dumps(records))
    return records
