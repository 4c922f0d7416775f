"""Mask AP through pycocotools: perfect masks score 1, shifted masks lose mask AP but keep box AP."""

import pytest
import torch

from cnnkit.detection.mask_metrics import coco_mask_map
from cnnkit.detection.scenes import digit_scenes
from cnnkit.detection.structures import Detections


def _perfect(dataset, shift=0):
    found = []
    for target in dataset.targets:
        masks = target["masks"].float()
        if shift:
            masks = torch.roll(masks, shifts=shift, dims=-1)
        found.append(Detections(target["boxes"], torch.ones(len(masks)), target["labels"], masks))
    return found


def test_perfect_masks_score_one_and_shifted_masks_lose_mask_ap_only():
    dataset = digit_scenes("val", 6)
    perfect = coco_mask_map(dataset, _perfect(dataset))
    assert perfect["mask_map"] == pytest.approx(1.0) and perfect["box_map"] == pytest.approx(1.0)
    shifted = coco_mask_map(dataset, _perfect(dataset, shift=4))
    assert shifted["mask_map"] < 0.9 and shifted["box_map"] == pytest.approx(1.0)
