"""Instance segmentation metrics: COCO mask AP and box AP through pycocotools.

Mask AP is COCO's average precision (101-point interpolation, IoU 0.50:0.05:0.95, averaged over
categories) with IoU measured between masks instead of boxes. Ground-truth masks and binarised
predicted masks (probability ≥ 0.5) are run-length encoded by pycocotools, as in COCO's own
evaluation, so the figures equal the official ones.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from cnnkit.data.coco import coco_dict
from cnnkit.data.detection import DetectionDataset
from cnnkit.detection.metrics import coco_evaluation
from cnnkit.detection.structures import Detections


def encode_masks(masks: Tensor) -> list[dict]:
    """``(R, H, W)`` bool masks → COCO compressed RLEs with ``counts`` as text (JSON-ready)."""
    from pycocotools import mask as coco_mask

    array = np.asfortranarray(masks.detach().cpu().numpy().astype(np.uint8).transpose(1, 2, 0))
    encoded = coco_mask.encode(array) if len(masks) else []
    for rle in encoded:
        rle["counts"] = rle["counts"].decode("ascii")
    return list(encoded)


def instance_results(dataset: DetectionDataset, detections: list[Detections], threshold: float = 0.5) -> list[dict]:
    """COCO result records with ``bbox``, ``score`` and ``segmentation`` (RLE of mask ≥ threshold)."""
    results = []
    for image_id, found in zip(dataset.image_ids, detections):
        records = found.to_coco(image_id, dataset.category_ids)
        for record, rle in zip(records, encode_masks(found.masks >= threshold)):
            record["segmentation"] = rle
            results.append(record)
    return results


def coco_mask_map(dataset: DetectionDataset, detections: list[Detections], threshold: float = 0.5) -> dict[str, float]:
    """``{"mask_map", "mask_map50", …, "box_map", "box_map50", …}`` (the six COCO summary figures
    for masks and for boxes) for detections whose ``masks`` are ``(R, H, W)`` probabilities; the
    dataset's targets carry ``masks (G, H, W)`` or COCO ``segmentation`` lists
    (`cnnkit.data.coco_masks.read_coco_instances`), which pycocotools reads as they are."""
    from cnnkit.data.coco_masks import segmentation_to_rle

    truth = coco_dict(dataset)
    annotations = iter(truth["annotations"])
    for index, target in enumerate(dataset.targets):
        if "segmentation" in target:
            height, width = dataset.image_size(index)
            rles = [segmentation_to_rle(s, height, width) for s in target["segmentation"]]
            for rle in rles:
                if isinstance(rle.get("counts"), bytes):
                    rle["counts"] = rle["counts"].decode("ascii")
        else:
            rles = encode_masks(target["masks"].bool())
        for rle in rles:
            next(annotations)["segmentation"] = rle
    results = instance_results(dataset, detections, threshold)
    scores = {}
    for kind, prefix in (("segm", "mask_"), ("bbox", "box_")):
        figures = coco_evaluation(truth, results, kind, dataset.image_ids)
        scores.update({prefix + key: value for key, value in figures.items()})
    return scores
