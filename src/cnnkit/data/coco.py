"""COCO-format detection data: an annotation JSON and a folder of images.

`read_coco` validates every annotation before anything trains (QUALITY case 12) and reports
each problem by annotation id: missing keys, boxes that are not four numbers, width or height
≤ 0, boxes outside their image, unknown image or category ids, polygons with fewer than
6 coordinates, images without annotations (kept, as negatives, and noted). Strict mode (the
default) raises one ValueError listing them all; lenient mode drops the bad annotations and
keeps the list in ``dataset.problems``.

`write_coco` writes a `DetectionDataset` back as PNG images and an annotation JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from cnnkit.data.images import save_image
from cnnkit.data.detection import DetectionDataset
from cnnkit.files import atomic_write

BOX_TOLERANCE = 1.0
"""Pixels a box may reach past the image border before it counts as outside (COCO rounds)."""


def validate_coco(data: dict, source: str = "annotations") -> tuple[list[dict], list[str], list[str]]:
    """Check a parsed COCO dict. Returns ``(good annotations, problems, notes)``.

    ``problems`` are lines such as "annotation 17 (image 3): box width 0 ≤ 0"; the annotations
    they name are left out of ``good``. ``notes`` are harmless findings (images without
    annotations). Raises ValueError when the file itself is unusable (not an object, no
    ``images``/``annotations``/``categories`` list).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{source}: missing the {key!r} list of a COCO annotation file")
    problems: list[str] = []
    images = {}
    for position, image in enumerate(data["images"]):
        missing = [key for key in ("id", "file_name", "width", "height") if key not in image]
        if missing:
            problems.append(f"image #{position}: missing key(s) {', '.join(missing)}")
            continue
        if not (_number(image["width"]) and _number(image["height"]) and image["width"] > 0 and image["height"] > 0):
            problems.append(f"image {image['id']}: size {image['width']}×{image['height']} is not positive")
            continue
        images[image["id"]] = image
    categories = {category["id"] for category in data["categories"] if "id" in category}
    good = []
    for position, annotation in enumerate(data["annotations"]):
        problem = _annotation_problem(annotation, images, categories)
        if problem:
            name = f"annotation {annotation['id']}" if "id" in annotation else f"annotation #{position} (no id)"
            where = f" (image {annotation['image_id']})" if "image_id" in annotation else ""
            problems.append(f"{name}{where}: {problem}")
        else:
            good.append(annotation)
    annotated = {annotation["image_id"] for annotation in data["annotations"] if "image_id" in annotation}
    notes = [f"image {image_id} ({image['file_name']}) has no annotations; kept as a negative"
             for image_id, image in images.items() if image_id not in annotated]
    return good, problems, notes


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _annotation_problem(annotation: dict, images: dict, categories: set) -> str | None:
    missing = [key for key in ("id", "image_id", "category_id", "bbox") if key not in annotation]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if annotation["image_id"] not in images:
        return f"unknown image id {annotation['image_id']}"
    if annotation["category_id"] not in categories:
        return f"unknown category id {annotation['category_id']}"
    box = annotation["bbox"]
    if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
        return f"bbox {box!r} is not four numbers [x, y, w, h]"
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return f"box {'width' if w <= 0 else 'height'} {w if w <= 0 else h} ≤ 0"
    image = images[annotation["image_id"]]
    if x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > image["width"] + BOX_TOLERANCE or y + h > image["height"] + BOX_TOLERANCE:
        return f"box {box} lies outside the {image['width']}×{image['height']} image"
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                length = len(polygon) if isinstance(polygon, list) else type(polygon).__name__
                return f"polygon with {length} coordinates (needs an even number ≥ 6)"
    return None


def read_coco(
    annotation_file: str | os.PathLike, image_dir: str | os.PathLike | None = None, strict: bool = True,
    include_crowd: bool = False,
) -> DetectionDataset:
    """Read a COCO detection dataset: boxes become xyxy, category ids become labels 1..K in the
    order of the file's ``categories`` (sorted by id). ``image_dir`` defaults to the first folder
    found of ``images/SPLIT``, ``SPLIT`` or ``images`` beside the JSON's folder (SPLIT from
    ``instances_SPLIT.json``), ``images`` inside it, or the JSON's own folder. ``iscrowd`` regions are left
    out of the targets unless ``include_crowd`` (they are neither positives nor negatives in
    COCO's evaluation). Image files are checked to exist; pixels are read on access.

    Raises FileNotFoundError for a missing file, ValueError for bad JSON and — in strict mode —
    for any annotation problem, listing all of them and suggesting lenient mode.
    """
    return read_coco_annotations(annotation_file, image_dir, strict, include_crowd)[0]


def read_coco_annotations(
    annotation_file: str | os.PathLike, image_dir: str | os.PathLike | None = None, strict: bool = True,
    include_crowd: bool = False,
) -> tuple[DetectionDataset, dict]:
    """`read_coco`'s dataset and the valid annotations of each image id (crowds included), from
    one reading of the file: what readers of the segmentations (`cnnkit.data.coco_masks`,
    `cnnkit.data.masks`) need besides the boxes."""
    annotation_file = Path(annotation_file)
    if not annotation_file.is_file():
        raise FileNotFoundError(f"{annotation_file}: annotation file not found")
    try:
        data = json.loads(annotation_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{annotation_file}: not valid JSON ({error})") from None
    good, problems, notes = validate_coco(data, str(annotation_file))
    if problems and strict:
        shown = "; ".join(problems[:20]) + (f"; … {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ValueError(f"{annotation_file}: {len(problems)} problem(s): {shown}; pass --lenient "
                         "(strict=False) to drop them and list them in the run report")
    image_dir = Path(image_dir) if image_dir is not None else _default_image_dir(annotation_file)
    categories = sorted(data["categories"], key=lambda category: category["id"])
    label_of = {category["id"]: k + 1 for k, category in enumerate(categories)}
    by_image: dict = {}
    for annotation in good:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    images, targets, image_ids = [], [], []
    for image in data["images"]:
        if "id" not in image or "file_name" not in image:
            continue
        path = image_dir / image["file_name"]
        if not path.is_file():
            message = f"image {image['id']}: file {path} not found"
            if strict:
                raise FileNotFoundError(f"{annotation_file}: {message}")
            problems.append(message)
            continue
        annotations = [a for a in by_image.get(image["id"], []) if include_crowd or not a.get("iscrowd", 0)]
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)],
                             dtype=torch.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image["width"])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image["height"])
        labels = torch.tensor([label_of[a["category_id"]] for a in annotations], dtype=torch.int64)
        images.append(path)
        targets.append({"boxes": boxes, "labels": labels, "size": (image["height"], image["width"])})
        image_ids.append(image["id"])
    dataset = DetectionDataset(
        images, targets, [c.get("name", str(c["id"])) for c in categories], [c["id"] for c in categories],
        image_ids, name=str(annotation_file), problems=problems + notes,
    )
    return dataset, by_image


def _default_image_dir(annotation_file: Path) -> Path:
    split = annotation_file.stem.rsplit("_", 1)[-1]  # instances_train2017.json → train2017
    root = annotation_file.parent.parent
    for candidate in (root / "images" / split, root / split, root / "images", annotation_file.parent / "images"):
        if candidate.is_dir():
            return candidate
    return annotation_file.parent


def coco_dict(dataset: DetectionDataset) -> dict:
    """The dataset as a COCO dict (images, annotations with area and iscrowd 0, categories), the
    ground truth `pycocotools.coco.COCO` evaluates against. File names are ``{image_id:06d}.png``."""
    images, annotations = [], []
    for index, image_id in enumerate(dataset.image_ids):
        height, width = dataset.image_size(index)
        images.append({"id": int(image_id), "file_name": f"{int(image_id):06d}.png", "height": int(height), "width": int(width)})
        target = dataset.targets[index]
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            x1, y1, x2, y2 = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(image_id), "category_id": int(dataset.category_ids[label - 1]),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            })
    categories = [{"id": int(i), "name": name} for i, name in zip(dataset.category_ids, dataset.categories)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(dataset: DetectionDataset, directory: str | os.PathLike) -> Path:
    """Write ``directory/images/*.png`` and ``directory/annotations.json``; returns the JSON's path.
    Only in-memory datasets (built-in scenes) have pixels to write."""
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    data = coco_dict(dataset)
    for index, record in enumerate(data["images"]):
        save_image(dataset.image(index), directory / "images" / record["file_name"])
    path = directory / "annotations.json"
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(data))
    return path
