"""Mask AP through pycocotools: perfect masks score 1, shifted masks lose mask AP but keep box AP."""

from pathlib import Path

import pytest
import torch

from cnnkit.detection.mask_metrics import coco_mask_map
from cnnkit.data.scenes import digit_scenes
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


def test_coco_polygons_and_rle_are_read_as_instance_masks_and_scored(tmp_path):
    import json

    import numpy as np
    from PIL import Image
    from pycocotools import mask as coco_mask

    from cnnkit.data.coco_masks import read_coco_instances

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "images" / "one.png")
    blob = np.zeros((20, 30), dtype=np.uint8, order="F")
    blob[2:9, 15:27] = 1
    rle = coco_mask.encode(blob)
    rle["counts"] = rle["counts"].decode()
    data = {"images": [{"id": 7, "file_name": "one.png", "width": 30, "height": 20}],
            "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "blob"}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 10, 10, 10], "area": 100,
                 "segmentation": [[0, 10, 10, 10, 10, 20, 0, 20]]},
                {"id": 2, "image_id": 7, "category_id": 2, "bbox": [15, 2, 12, 7], "area": 84, "segmentation": rle}]}
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    dataset = read_coco_instances(tmp_path / "annotations.json", tmp_path / "images")
    image, target = dataset[0]
    assert target["masks"].shape == (2, 20, 30) and target["masks"][1].sum() == 84
    assert target["masks"][0].sum() == 100 and target["masks"][0, 15, 5]
    perfect = [Detections(target["boxes"], torch.ones(2), target["labels"], target["masks"].float())]
    scores = coco_mask_map(dataset, perfect)
    assert scores["mask_map"] == pytest.approx(1.0) and scores["box_map"] == pytest.approx(1.0)


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_DATA / "coco128").is_dir(), reason="../shared/data/coco128 absent")
def test_coco128_masks_decode_and_their_own_masks_score_one():
    from cnnkit.data.coco_masks import read_coco_instances

    dataset = read_coco_instances(SHARED_DATA / "coco128" / "annotations" / "instances_train2017.json",
                                  strict=False).subset(range(6))
    found = []
    for index in range(len(dataset)):
        image, target = dataset[index]
        assert target["masks"].shape == (len(target["boxes"]), *image.shape[-2:])
        found.append(Detections(target["boxes"], torch.ones(len(target["boxes"])), target["labels"],
                                target["masks"].float()))
    scores = coco_mask_map(dataset, found)
    assert scores["mask_map"] > 0.95 and scores["box_map"] > 0.95
