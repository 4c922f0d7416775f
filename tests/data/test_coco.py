"""Detection data: COCO reading and validation, digit scenes, box-preserving augmentation."""

import json
from pathlib import Path

import pytest
import torch

from cnnkit.detection.augment import box_augmentation
from cnnkit.data.coco import coco_dict, read_coco, write_coco
from cnnkit.data.detection import check_categories
from cnnkit.data.scenes import digit_scenes
from cnnkit.detection.structures import Detections

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _write_coco(tmp_path, annotations, images=None):
    (tmp_path / "images").mkdir()
    from cnnkit.data.images import save_image

    images = images or [{"id": 1, "file_name": "a.png", "width": 20, "height": 10},
                        {"id": 2, "file_name": "b.png", "width": 20, "height": 10}]
    for image in images:
        save_image(torch.rand(3, image["height"], image["width"]), tmp_path / "images" / image["file_name"])
    data = {"images": images, "annotations": annotations, "categories": [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}]}
    path = tmp_path / "annotations" / "instances.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return path


BAD = [
    {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]},  # good
    {"id": 2, "image_id": 1, "category_id": 7, "bbox": [1, 1, 0, 5]},  # width 0
    {"id": 3, "image_id": 1, "category_id": 9, "bbox": [15, 1, 10, 5]},  # outside
    {"id": 4, "image_id": 5, "category_id": 7, "bbox": [1, 1, 5, 5]},  # unknown image
    {"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]},  # unknown category
    {"id": 6, "image_id": 1, "category_id": 7},  # missing bbox
    {"id": 8, "image_id": 1, "category_id": 7, "bbox": [1, 1, 2, 2], "segmentation": [[1, 1, 2, 2]]},  # polygon < 6
]


def test_strict_coco_lists_every_problem_by_annotation_id(tmp_path):
    path = _write_coco(tmp_path, BAD)
    with pytest.raises(ValueError) as error:
        read_coco(path)
    message = str(error.value)
    assert "6 problem(s)" in message and "--lenient" in message
    for expected in ("annotation 2 (image 1): box width 0", "annotation 3 (image 1): box [15, 1, 10, 5] lies outside",
                     "annotation 4 (image 5): unknown image id 5", "annotation 5 (image 1): unknown category id 3",
                     "annotation 6 (image 1): missing key(s) bbox", "annotation 8 (image 1): polygon with 4"):
        assert expected in message


def test_lenient_coco_drops_and_lists(tmp_path):
    dataset = read_coco(_write_coco(tmp_path, BAD), strict=False)
    assert len(dataset) == 2 and dataset.categories == ["cat", "dog"] and dataset.category_ids == [7, 9]
    image, target = dataset[0]
    assert image.shape == (3, 10, 20)
    assert target["boxes"].tolist() == [[1, 1, 6, 6]] and target["labels"].tolist() == [1]
    assert len(dataset[1][1]["boxes"]) == 0  # image without annotations kept as a negative
    assert sum(p.startswith("annotation") for p in dataset.problems) == 6
    assert any("image 2 (b.png) has no annotations" in p for p in dataset.problems)


def test_coco_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_coco(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_coco(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ValueError, match="missing the 'images' list"):
        read_coco(tmp_path / "empty.json")


def test_digit_scenes_are_seeded_and_split_and_export_round_trips(tmp_path):
    train = digit_scenes("train", count=6)
    again = digit_scenes("train", count=6)
    test = digit_scenes("test", count=6)
    assert torch.equal(train.images[3], again.images[3]) and not torch.equal(train.images[0], test.images[0])
    image, target = train[0]
    assert image.shape == (3, 128, 128) and 0 <= image.min() and image.max() <= 1
    boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
    assert ((labels >= 1) & (labels <= 10)).all() and len(boxes) == len(masks) >= 1
    for box, mask in zip(boxes.long().tolist(), masks):  # the box is the tight box of the mask
        rows, columns = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        assert box == [columns[0], rows[0], columns[-1] + 1, rows[-1] + 1]
    path = write_coco(train, tmp_path / "scenes")
    back = read_coco(path)
    assert back.categories == [str(d) for d in range(10)] and len(back) == 6
    for i in range(6):
        assert torch.allclose(back[i][1]["boxes"], train.targets[i]["boxes"])
        assert torch.equal(back[i][1]["labels"], train.targets[i]["labels"])
        assert (back[i][0] - train.images[i]).abs().max() <= 1 / 255
    assert coco_dict(train)["annotations"][0]["area"] > 0


def test_augmentation_moves_boxes_with_pixels():
    image = torch.zeros(3, 40, 60)
    image[:, 10:20, 5:15] = 1.0
    target = {"boxes": torch.tensor([[5.0, 10.0, 15.0, 20.0]]), "labels": torch.tensor([3]),
              "masks": (image[0] > 0)[None]}
    flip = box_augmentation(flip=True, scale=(1.0, 1.0), crop=False)
    flip.transform.transforms[0].p = 1.0
    flipped, out = flip(image, target)
    assert out["boxes"].tolist() == [[45.0, 10.0, 55.0, 20.0]] and out["labels"].tolist() == [3]
    assert flipped[0, 10:20, 45:55].min() == 1 and flipped[0].sum() == 100
    torch.manual_seed(0)
    for _ in range(5):  # random rescale and crop: the box stays the tight box of the bright square
        augmented, out = box_augmentation(flip=False)(image, target)
        if len(out["boxes"]):
            x1, y1, x2, y2 = out["boxes"][0].tolist()
            ys, xs = torch.where(out["masks"][0])
            assert abs(xs.min() - x1) <= 1.5 and abs(xs.max() + 1 - x2) <= 1.5 and abs(ys.min() - y1) <= 1.5


def test_detections_index_and_coco_records():
    d = Detections(torch.tensor([[0.0, 0, 10, 20], [5, 5, 6, 6]]), torch.tensor([0.9, 0.2]), torch.tensor([1, 2]))
    assert len(d) == 2 and len(d[d.scores > 0.5]) == 1 and d[1].labels.tolist() == [2] and len(d.above(0.1)) == 2
    assert d[0].to_coco(42, [7, 9]) == [{"image_id": 42, "category_id": 7, "bbox": [0.0, 0.0, 10.0, 20.0], "score": 0.9}]
    with pytest.raises(ValueError):
        Detections(torch.zeros(2, 4), torch.zeros(3), torch.zeros(2, dtype=torch.int64))


def test_category_mismatch_fails_loudly():
    scenes = digit_scenes("val", count=1)
    check_categories(scenes, [str(d) for d in range(10)])
    with pytest.raises(ValueError, match="do not match the model's"):
        check_categories(scenes, ["cat", "dog"])


@pytest.mark.shared_data
def test_coco128_reads_strictly():
    path = SHARED / "coco128" / "annotations" / "instances_train2017.json"
    if not path.is_file():
        pytest.skip("../shared/data/coco128 is absent")
    dataset = read_coco(path, strict=False)
    assert len(dataset) >= 126 and len(dataset.categories) == 80
    image, target = dataset[0]
    assert image.shape[0] == 3 and target["boxes"].shape[1] == 4
