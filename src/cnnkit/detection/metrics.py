"""Detection metrics: COCO mAP through pycocotools, and VOC-style AP@0.5 per class.

COCO AP (Lin et al. 2014): average precision with 101-point interpolation, averaged over IoU
thresholds 0.50:0.05:0.95 and over categories; also at IoU 0.5 and 0.75 and for small
(area < 32²), medium and large (> 96²) objects. VOC AP (Everingham et al. 2010): per class,
detections sorted by score are true positives when they overlap an unclaimed ground-truth box of
their class with IoU ≥ 0.5; AP is the area under the precision envelope (all-point
interpolation).
"""

from __future__ import annotations

import contextlib
import io

import torch
from torchvision.ops import box_iou

from cnnkit.data.coco import coco_dict
from cnnkit.data.detection import DetectionDataset
from cnnkit.detection.structures import Detections

COCO_KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large")


def coco_map(dataset: DetectionDataset, detections: list[Detections]) -> dict[str, float]:
    """``{"map", "map50", "map75", "map_small", "map_medium", "map_large"}`` by pycocotools
    (−1 where a size class has no objects, as pycocotools reports it)."""
    results = [record for image_id, found in zip(dataset.image_ids, detections)
               for record in found.to_coco(image_id, dataset.category_ids)]
    return coco_evaluation(coco_dict(dataset), results, "bbox", dataset.image_ids)


def coco_evaluation(truth: dict, results: list[dict], kind: str, image_ids) -> dict[str, float]:
    """pycocotools' six summary figures (`COCO_KEYS`) of the result records against the ground
    truth dict over ``image_ids``, for ``kind`` "bbox" (boxes) or "segm" (masks); 0 without results."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {key: 0.0 for key in COCO_KEYS}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = truth
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), kind)
        evaluation.params.imgIds = [int(i) for i in image_ids]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {key: float(value) for key, value in zip(COCO_KEYS, evaluation.stats[:6])}


def voc_ap(dataset: DetectionDataset, detections: list[Detections], iou_threshold: float = 0.5) -> dict[str, float]:
    """AP at ``iou_threshold`` for each category name (NaN for a class without ground truth)."""
    aps = {}
    for label, name in enumerate(dataset.categories, start=1):
        scores, hits, total = [], [], 0
        for target, found in zip(dataset.targets, detections):
            truth = target["boxes"][target["labels"] == label]
            total += len(truth)
            mine = found[found.labels == label]
            order = mine.scores.argsort(descending=True)
            claimed = torch.zeros(len(truth), dtype=torch.bool)
            iou = box_iou(mine.boxes[order], truth) if len(truth) and len(mine) else None
            for row, index in enumerate(order.tolist()):
                scores.append(float(mine.scores[index]))
                hit = False
                if iou is not None:
                    best, column = iou[row].max(0)
                    if best >= iou_threshold and not claimed[column]:
                        claimed[column] = hit = True
                hits.append(hit)
        aps[name] = average_precision(torch.tensor(scores), torch.tensor(hits, dtype=torch.bool), total)
    return aps


def average_precision(scores: torch.Tensor, hits: torch.Tensor, total: int) -> float:
    """Area under the interpolated precision-recall curve, p_interp(r) = max_{r' ≥ r} p(r')."""
    if total == 0:
        return float("nan")
    if scores.numel() == 0:
        return 0.0
    hits = hits[scores.argsort(descending=True, stable=True)].float()
    true_positives = hits.cumsum(0)
    recall = torch.cat([torch.zeros(1), true_positives / total, torch.ones(1)])
    precision = torch.cat([torch.zeros(1), true_positives / torch.arange(1, len(hits) + 1), torch.zeros(1)])
    precision = precision.flip(0).cummax(0).values.flip(0)  # the envelope
    changes = torch.where(recall[1:] != recall[:-1])[0]
    return float(((recall[changes + 1] - recall[changes]) * precision[changes + 1]).sum())
