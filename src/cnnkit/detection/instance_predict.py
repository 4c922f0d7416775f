"""Instance segmentation of image files: outlined masks with labels, and the masks as COCO JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from cnnkit.data.images import read_image, save_image
from cnnkit.detection.mask_metrics import encode_masks
from cnnkit.detection.structures import Detections
from cnnkit.files import atomic_write


MASK_KEY = "roi_heads.mask_predictor.mask_fcn_logits.weight"


def is_instance_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Mask R-CNN run folder or checkpoint of cnnkit, or a
    ``maskrcnn_resnet50_fpn`` state dict (read safely; False for anything unreadable)."""
    from cnnkit.detection.mask_training import is_mask_rcnn_checkpoint
    from cnnkit.models.weights import read_state_dict

    path = Path(path)
    if is_mask_rcnn_checkpoint(path):
        return True
    if not path.is_file():
        return False
    try:
        state, _ = read_state_dict(path)
    except (ValueError, OSError):
        return False
    return MASK_KEY in state


def open_instance_segmenter(path: str | os.PathLike, min_size: int = 800, max_size: int = 1333):
    """A Mask R-CNN in eval mode from a cnnkit run folder or checkpoint, or from a state dict
    written for torchvision's ``maskrcnn_resnet50_fpn`` (class count read from the file;
    categories named by their COCO ids)."""
    from cnnkit.detection.mask_rcnn import maskrcnn_resnet50_fpn
    from cnnkit.detection.mask_training import is_mask_rcnn_checkpoint, load_mask_rcnn
    from cnnkit.detection.weights import load_detector_weights
    from cnnkit.models.weights import read_state_dict

    if is_mask_rcnn_checkpoint(path):
        return load_mask_rcnn(path)
    state, _ = read_state_dict(path)
    if MASK_KEY not in state:
        raise ValueError(f"{path}: neither a cnnkit Mask R-CNN checkpoint nor a maskrcnn_resnet50_fpn state dict")
    model = maskrcnn_resnet50_fpn(num_classes=state[MASK_KEY].shape[0], min_size=min_size, max_size=max_size)
    load_detector_weights(model, path)
    return model.eval()


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
    """Detect and segment instances in each image file; with ``output``, write ``NAME_instances.png``
    and ``instances.json`` (COCO results with RLE ``segmentation``, image_id = position from 1,
    plus the file name). Returns the records."""
    records = []
    category_ids = list(range(1, len(model.categories) + 1))
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
    for image_id, path in enumerate(paths, start=1):
        image = read_image(path, gray=False)
        found = model.predict([image])[0].above(score_threshold)
        for record, rle in zip(found.to_coco(image_id, category_ids), encode_masks(found.masks >= 0.5)):
            records.append({**record, "segmentation": rle, "category": model.categories[record["category_id"] - 1],
                            "file_name": str(path)})
        if output is not None:
            save_image(draw_instances(image, found, model.categories), Path(output) / f"{Path(path).stem}_instances.png")
    if output is not None:
        with atomic_write(Path(output) / "instances.json") as temporary:
            temporary.write_text(json.dumps(records))
    return records
