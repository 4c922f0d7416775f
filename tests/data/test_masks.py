"""Segmentation data: label-mask folders (indices, palette PNGs, colour-coded, void), COCO objects
painted as class masks through pycocotools, built-in digit scenes, and CamVid when present."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.masks import (
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


def _write_images(folder: Path, names, suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.zeros((4, 6, 3), dtype=np.uint8)).save(folder / f"{name}{suffix}")


def _write_labels(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.zeros((4, 6), dtype=np.uint8), mode="L").save(folder / f"{name}.png")


def _files(dataset) -> set:
    return {Path(name).stem for name in dataset.images}


def test_held_out_images_are_split_into_validation_and_test(tmp_path):
    camvid = tmp_path / "camvid"  # no test split: its 5 val images become 2 val and 3 test
    for split, names in (("train", ["t0", "t1"]), ("val", [f"v{i}" for i in range(5)])):
        _write_images(camvid / split, names)
        _write_labels(camvid / f"{split}annot", names)
    voc = tmp_path / "voc"  # the val list's 4 images become 2 val and 2 test
    names = [f"i{i}" for i in range(7)]
    _write_images(voc / "JPEGImages", names, ".jpg")
    _write_labels(voc / "SegmentationClass", names)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("i0\ni1\ni2\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("i3\ni4\ni5\ni6\n")
    for root, sizes, held_out in ((camvid, (2, 2, 3), {f"v{i}" for i in range(5)}), (voc, (3, 2, 2), {"i3", "i4", "i5", "i6"})):
        train, val, test = load_segmentation_data(str(root), seed=1)
        assert (len(train), len(val), len(test)) == sizes
        assert _files(val) | _files(test) == held_out and not _files(val) & _files(test)
        assert _files(load_segmentation_data(str(root), seed=1).test) == _files(test)  # seeded
    assert _files(load_segmentation_data(str(camvid), seed=2).test) != _files(load_segmentation_data(str(camvid), seed=1).test)


def test_coco_files_validate_and_test_on_different_images(tmp_path):
    names = [f"{i}.png" for i in range(20)]
    _write_images(tmp_path / "images", [Path(n).stem for n in names])
    data = {"images": [{"id": i + 1, "file_name": n, "width": 6, "height": 4} for i, n in enumerate(names)],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4,
                             "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]} for i in range(20)]}
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    train, val, test = load_segmentation_data(str(tmp_path / "annotations.json"), str(tmp_path / "images"))
    assert (len(train), len(val), len(test)) == (16, 2, 2)
    assert not _files(val) & _files(test) and not (_files(val) | _files(test)) & _files(train)
    (tmp_path / "two.json").write_text(json.dumps({**data, "images": data["images"][:2], "annotations": []}))
    with pytest.raises(ValueError, match="two.json: 2 image"):
        load_segmentation_data(str(tmp_path / "two.json"), str(tmp_path / "images"))


def test_a_run_on_image_files_reads_them_in_workers_and_reports_each_split_s_files(tmp_path):
    from cnnkit.segmentation.task import SegmentationConfig
    from cnnkit.train import train

    for split, names in (("train", ["t0", "t1", "t2"]), ("val", [f"v{i}" for i in range(4)])):
        _write_images(tmp_path / "camvid" / split, names)
        _write_labels(tmp_path / "camvid" / f"{split}annot", names)
    config = SegmentationConfig(method="sliding", data=str(tmp_path / "camvid"), patch_size=5, patches_per_image=4,
                                epochs=1, batch_size=2, workers=1, threads=1, runs_dir=str(tmp_path / "runs"),
                                checkpoint_every_seconds=0)
    files = train(config, progress=False).report["data"]["files"]
    assert [len(files[split]) for split in ("train", "val", "test")] == [3, 2, 2]
    assert not set(files["val"]) & set(files["test"]) and all(Path(f).is_file() for f in files["test"])
