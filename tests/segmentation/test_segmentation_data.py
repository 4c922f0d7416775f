"""Segmentation data: label-mask folders (indices, palette PNGs, colour-coded, void), COCO objects
painted as class masks through pycocotools, built-in digit scenes, and CamVid when present."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.segmentation.datasets import (
    CAMVID_CLASSES,
    coco_class_masks,
    digit_scene_segmentation,
    load_camvid,
    load_mask_folder,
    load_segmentation_data,
    read_label_mask,
    voc_palette,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _write_pair(folder: Path, name: str, labels: np.ndarray, mode: str = "L") -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((*labels.shape, 3), dtype=np.uint8)).save(folder / "images" / f"{name}.jpg")
    picture = Image.fromarray(labels.astype(np.uint8), mode="L")
    if mode == "P":
        picture = picture.convert("P")
        picture.putpalette([v for colour in voc_palette(256) for v in colour])
    picture.save(folder / "labels" / f"{name}.png")


def test_mask_folder_pairs_by_name_and_maps_void_to_ignore(tmp_path):
    labels = np.array([[0, 1, 2], [11, 2, 1]])
    _write_pair(tmp_path, "a", labels)
    _write_pair(tmp_path, "b", labels[::-1], mode="P")  # VOC-style palette PNG: values are indices
    dataset = load_mask_folder(tmp_path / "images", tmp_path / "labels", ["x", "y", "z"], void_value=11)
    image, mask = dataset[0]
    assert image.shape == (3, 2, 3) and mask.tolist() == [[0, 1, 2], [255, 2, 1]]
    assert dataset.mask(1).tolist() == [[255, 2, 1], [0, 1, 2]]


def test_colour_coded_labels_are_looked_up_in_the_palette(tmp_path):
    palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [9, 9, 9]]], dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "m.png")
    assert read_label_mask(tmp_path / "m.png", 3, palette=palette).tolist() == [[1, 2, 255]]


def test_unknown_label_values_and_missing_masks_are_named(tmp_path):
    _write_pair(tmp_path, "a", np.array([[0, 7]]))
    with pytest.raises(ValueError, match=r"a\.png: label value\(s\) \[7\]"):
        load_mask_folder(tmp_path / "images", tmp_path / "labels", ["x", "y"])[0]
    Image.fromarray(np.zeros((1, 2, 3), dtype=np.uint8)).save(tmp_path / "images" / "lonely.jpg")
    with pytest.raises(FileNotFoundError, match="lonely.jpg"):
        load_mask_folder(tmp_path / "images", tmp_path / "labels", ["x", "y"])


def test_coco_objects_become_class_masks_with_crowds_void(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "images" / "one.png")
    from pycocotools import mask as coco_mask

    crowd = np.zeros((20, 30), dtype=np.uint8, order="F")
    crowd[15:20, 0:5] = 1
    rle = coco_mask.encode(crowd)
    rle["counts"] = rle["counts"].decode()
    data = {
        "images": [{"id": 1, "file_name": "one.png", "width": 30, "height": 20}],
        "categories": [{"id": 5, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10], "area": 100,
             "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [20, 5, 5, 5], "area": 25,
             "segmentation": [[20, 5, 25, 5, 25, 10, 20, 10]]},
            {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 15, 5, 5], "area": 25, "iscrowd": 1,
             "segmentation": rle},
        ],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    dataset = coco_class_masks(tmp_path / "annotations.json", tmp_path / "images")
    assert dataset.classes == ["background", "dog", "cat"]  # categories sorted by id: 3 dog, 5 cat
    mask = dataset.mask(0)
    assert mask[5, 5] == 2 and mask[7, 22] == 1 and mask[17, 2] == 255 and mask[15, 15] == 0
    assert (mask == 2).sum() == 100  # pycocotools rasterises the 10×10 square to 100 pixels


def test_digit_scenes_label_each_digit_s_ink_with_its_class():
    dataset = digit_scene_segmentation("val", 3)
    image, mask = dataset[0]
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64)
    assert dataset.classes[0] == "background" and dataset.num_classes == 11
    assert 0 < (mask > 0).float().mean() < 0.5 and mask.max() <= 10
    assert torch.equal(digit_scene_segmentation("val", 3).mask(2), dataset.mask(2))  # seeded


def test_unknown_data_is_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        load_segmentation_data(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="not a segmentation dataset"):
        load_segmentation_data(str(tmp_path))


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_DATA / "camvid-sample").is_dir(), reason="../shared/data/camvid-sample absent")
def test_camvid_sample_reads_with_void_ignored():
    train = load_camvid(SHARED_DATA / "camvid-sample", "train")
    assert len(train) == 30 and train.classes == list(CAMVID_CLASSES)
    image, mask = train[0]
    assert image.shape == (3, 360, 480) and mask.shape == (360, 480)
    assert set(mask.unique().tolist()) <= set(range(11)) | {255}
