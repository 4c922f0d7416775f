"""Semantic segmentation data: images with a class label for every pixel.

A `SegmentationDataset` yields ``(image (3, H, W) float in [0, 1], mask (H, W) int64)`` where
``mask[y, x]`` is a class index in 0..K-1 or ``ignore_index`` (255) for void pixels, which
neither the loss nor the metrics count. Three sources:

- image + label-mask folder pairs as CamVid and Pascal VOC ship them (`load_mask_folder`,
  `load_camvid`, `load_voc`): label PNGs holding class indices (grayscale or palette mode), or
  colour-coded RGB labels mapped back through the class palette; a void value (CamVid's 11,
  VOC's 255) becomes ``ignore_index``.
- COCO instance annotations rendered to class masks (`coco_class_masks`): polygons and RLE
  decoded by pycocotools, class k = the k-th category by id, 0 the background, crowd regions void.
- built-in digit scenes (`digit_scene_segmentation`): the digit-scene generator (`cnnkit.data.scenes`),
  each digit's ink labelled with its class, everything else background.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cnnkit.data.coco_masks import segmentation_to_rle
from cnnkit.data.images import check_image, read_image

IGNORE_INDEX = 255

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign-symbol", "fence", "car",
                  "pedestrian", "bicyclist")
CAMVID_PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
                  (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))
CAMVID_VOID = 11

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VOC_VOID = 255


def voc_palette(count: int = 256) -> list[tuple[int, int, int]]:
    """Pascal VOC's colour map: class c's colour takes bit 3j + i of c into bit 7 - j of channel i."""
    palette = []
    for label in range(count):
        colour, c = [0, 0, 0], label
        for j in range(8):
            for channel in range(3):
                colour[channel] |= ((c >> channel) & 1) << (7 - j)
            c >>= 3
        palette.append(tuple(colour))
    return palette


def default_palette(count: int) -> list[tuple[int, int, int]]:
    """Distinct colours for ``count`` classes (VOC's map; class 0 black)."""
    return voc_palette(count)


@dataclass
class SegmentationDataset:
    """Images and label masks. ``images[i]`` is a ``(3, H, W)`` tensor or a path read on access;
    ``masks[i]`` an ``(H, W)`` int64 tensor, a path, or a callable rendering it. ``classes[k]``
    names class k and ``palette[k]`` is its RGB colour; ``ignore_index`` marks void pixels."""

    images: list
    masks: list
    classes: list[str]
    palette: list[tuple[int, int, int]] = field(default_factory=list)
    ignore_index: int = IGNORE_INDEX
    name: str = "segmentation"
    void_value: int | None = None
    colour_masks: bool = False

    def __post_init__(self) -> None:
        if len(self.images) != len(self.masks):
            raise ValueError(f"{self.name}: {len(self.images)} images but {len(self.masks)} masks")
        self.classes = list(self.classes)
        self.palette = [tuple(c) for c in (self.palette or default_palette(len(self.classes)))]
        if len(self.palette) < len(self.classes):
            raise ValueError(f"{self.name}: {len(self.classes)} classes but {len(self.palette)} palette colours")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def on_disk(self) -> bool:
        """Whether the images are files read on access (worth DataLoader workers)."""
        return bool(self.images) and isinstance(self.images[0], (str, os.PathLike))

    def image(self, index: int) -> Tensor:
        image = self.images[index]
        if isinstance(image, (str, os.PathLike)):
            return read_image(image, gray=False)
        return image.float() / 255 if image.dtype == torch.uint8 else image.float()

    def mask(self, index: int) -> Tensor:
        mask = self.masks[index]
        if callable(mask):
            return mask()
        if isinstance(mask, (str, os.PathLike)):
            palette = self.palette if self.colour_masks else None
            return read_label_mask(mask, self.num_classes, self.void_value, palette, self.ignore_index)
        return mask

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = self.image(index), self.mask(index)
        if image.shape[-2:] != mask.shape:
            raise ValueError(f"{self.name}: image {index} is {tuple(image.shape[-2:])} but its mask {tuple(mask.shape)}"
                             + (f" ({self.masks[index]})" if isinstance(self.masks[index], (str, Path)) else ""))
        return image, mask

    def subset(self, indices) -> SegmentationDataset:
        indices = list(indices)
        return SegmentationDataset([self.images[i] for i in indices], [self.masks[i] for i in indices], self.classes,
                                   self.palette, self.ignore_index, self.name, self.void_value, self.colour_masks)


def read_label_mask(path: str | os.PathLike, num_classes: int, void_value: int | None = None,
                    palette=None, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """A label PNG as an ``(H, W)`` int64 mask of class indices.

    Grayscale and palette-mode files hold the indices themselves; with ``palette`` an RGB file is
    colour-coded and each pixel's colour is looked up (unknown colours are void). ``void_value``
    becomes ``ignore_index``. Raises ValueError naming the file for a value that is neither a class
    nor void, and the errors of `cnnkit.data.images.check_image` for a missing or bad file.
    """
    path = Path(path)
    check_image(path)  # missing, not an image, decompression bomb: refused before decoding
    try:
        with Image.open(path) as picture:
            if palette is not None and picture.mode not in ("L", "P", "I", "I;16"):
                rgb = np.asarray(picture.convert("RGB"), dtype=np.int64)
                codes = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
                mask = np.full(codes.shape, ignore_index, dtype=np.int64)
                for label, (r, g, b) in enumerate(palette[:num_classes]):
                    mask[codes == (r << 16 | g << 8 | b)] = label
                return torch.from_numpy(mask)
            if picture.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"{path}: label mask in mode {picture.mode}; expected class indices "
                                 "(grayscale or palette PNG) or pass the class palette for colour-coded labels")
            values = torch.from_numpy(np.asarray(picture).astype(np.int64))
    except OSError as error:
        raise ValueError(f"{path}: corrupt or truncated label mask ({error})") from None
    if void_value is not None:
        values[values == void_value] = ignore_index
    bad = (values >= num_classes) & (values != ignore_index)
    if bad.any():
        found = sorted(set(values[bad].unique().tolist()))[:10]
        raise ValueError(f"{path}: label value(s) {found} are neither a class (0..{num_classes - 1}) nor void "
                         f"({void_value}); check the class list")
    return values


def load_mask_folder(image_dir: str | os.PathLike, mask_dir: str | os.PathLike, classes, palette=None,
                     void_value: int | None = None, colour_masks: bool = False, name: str | None = None,
                     names: list[str] | None = None) -> SegmentationDataset:
    """Pair each image in ``image_dir`` with the label file of the same stem in ``mask_dir``
    (``.png`` preferred). ``names`` restricts to those stems. Raises FileNotFoundError naming a
    missing folder or an image without a mask."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in suffixes)
    if names is not None:
        by_stem = {p.stem: p for p in images}
        missing = [n for n in names if n not in by_stem]
        if missing:
            raise FileNotFoundError(f"{image_dir}: no image for {', '.join(missing[:5])}")
        images = [by_stem[n] for n in names]
    masks = {p.stem: p for p in sorted(mask_dir.iterdir(), key=lambda p: p.suffix.lower() == ".png")
             if p.suffix.lower() in suffixes}  # a .png label wins over another file of the same stem
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        raise FileNotFoundError(f"{mask_dir}: no label mask for {len(missing)} image(s): {', '.join(missing[:5])}")
    if not images:
        raise FileNotFoundError(f"{image_dir}: no images")
    return SegmentationDataset(images, [masks[p.stem] for p in images], list(classes), list(palette or []),
                               name=name or str(image_dir), void_value=void_value, colour_masks=colour_masks)


def load_camvid(root: str | os.PathLike, split: str = "train") -> SegmentationDataset:
    """CamVid as SegNet's tutorial ships it: ``ROOT/SPLIT`` images and ``ROOT/SPLITannot`` label PNGs
    with values 0..10 (sky … bicyclist) and 11 void."""
    root = Path(root)
    return load_mask_folder(root / split, root / f"{split}annot", CAMVID_CLASSES, CAMVID_PALETTE, CAMVID_VOID,
                            name=f"camvid/{split}")


def load_voc(root: str | os.PathLike, split: str = "train") -> SegmentationDataset:
    """Pascal VOC 2007-2012 segmentation: ``ROOT/JPEGImages``, palette PNGs in
    ``ROOT/SegmentationClass`` (255 void, the object borders) and the image list
    ``ROOT/ImageSets/Segmentation/SPLIT.txt``."""
    root = Path(root)
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing}: no such image list (expected a VOC2012-style folder)")
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return load_mask_folder(root / "JPEGImages", root / "SegmentationClass", VOC_CLASSES, voc_palette(21), VOC_VOID,
                            name=f"voc/{split}", names=names)


def coco_class_masks(annotation_file: str | os.PathLike, image_dir: str | os.PathLike | None = None,
                     strict: bool = True) -> SegmentationDataset:
    """COCO instance annotations as class masks: class 0 "background", class k the k-th category
    by id; each object's polygon or RLE is painted with its class (larger objects first, so a
    smaller object on top stays visible) and ``iscrowd`` regions become void. Annotations are
    validated as `cnnkit.data.coco.read_coco` does (strict: any problem raises, listing all)."""
    from cnnkit.data.coco import read_coco_annotations

    detection, by_image = read_coco_annotations(annotation_file, image_dir, strict=strict)
    label_of = {category_id: k + 1 for k, category_id in enumerate(detection.category_ids)}
    masks = [_CocoMask([a for a in by_image.get(image_id, []) if "segmentation" in a], label_of, tuple(target["size"]))
             for image_id, target in zip(detection.image_ids, detection.targets)]
    classes = ["background", *detection.categories]
    return SegmentationDataset(list(detection.images), masks, classes, name=str(annotation_file))


class _CocoMask:
    """Renders one image's class mask on demand (pycocotools decodes polygons and RLE)."""

    def __init__(self, annotations: list[dict], label_of: dict, size: tuple[int, int]) -> None:
        self.annotations, self.label_of, self.size = annotations, label_of, size

    def __call__(self) -> Tensor:
        from pycocotools import mask as coco_mask

        height, width = self.size
        mask = np.zeros((height, width), dtype=np.int64)
        crowd = np.zeros((height, width), dtype=bool)
        for annotation in sorted(self.annotations, key=lambda a: -float(a.get("area", 0))):
            binary = coco_mask.decode(segmentation_to_rle(annotation["segmentation"], height, width)).astype(bool)
            if annotation.get("iscrowd", 0):
                crowd |= binary
            else:
                mask[binary] = self.label_of[annotation["category_id"]]
        mask[crowd] = IGNORE_INDEX
        return torch.from_numpy(mask)


DIGIT_CLASSES = ("background", *(str(d) for d in range(10)))


def digit_scene_segmentation(split: str = "train", count: int | None = None, canvas: int = 64, seed: int = 0
                             ) -> SegmentationDataset:
    """Built-in digit scenes (`cnnkit.data.scenes.digit_scenes`: real handwritten digits,
    disjoint digit pools per split) with per-pixel labels: class 0 background, class d + 1 the ink
    of digit d. ``canvas`` pixels square, digits 14-30 pixels, up to 3 per scene."""
    from cnnkit.data.scenes import digit_scenes

    scenes = digit_scenes(split, count, canvas=canvas, min_size=min(14, canvas), max_size=min(30, canvas),
                          max_digits=3, seed=seed)
    masks = []
    for target in scenes.targets:
        mask = torch.zeros(canvas, canvas, dtype=torch.int64)
        for instance, label in zip(target["masks"], target["labels"].tolist()):
            mask[instance] = label  # detection label d + 1 is digit d: the same index here
        masks.append(mask)
    images = [image for image in scenes.images]
    return SegmentationDataset(images, masks, list(DIGIT_CLASSES), name=f"digit-scenes/{split}")


class SegmentationSplits(NamedTuple):
    """The three splits of a segmentation run; validation and test never share an image."""

    train: SegmentationDataset
    val: SegmentationDataset
    test: SegmentationDataset


def seeded_split(dataset: SegmentationDataset, seed: int, *counts: int) -> list[SegmentationDataset]:
    """Disjoint parts of the seeded permutation of ``dataset``: ``counts[0]`` images,
    ``counts[1]``, …, then the rest. Raises ValueError naming the data when a part would be empty."""
    bounds = [0, *itertools.accumulate(counts), len(dataset)]
    if any(end <= start for start, end in zip(bounds, bounds[1:])):
        raise ValueError(f"{dataset.name}: {len(dataset)} image(s), too few for {len(bounds) - 1} splits "
                         "(validation and test are different images)")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    return [dataset.subset(order[start:end]) for start, end in zip(bounds, bounds[1:])]


def load_segmentation_data(data: str, image_dir: str | None = None, seed: int = 0, train_images: int | None = None,
                           val_images: int | None = None, test_images: int | None = None, lenient: bool = False
                           ) -> SegmentationSplits:
    """(train, val, test) for ``data``: "digit-scenes"; a CamVid-style folder (``train``,
    ``trainannot``, ``val``, ``valannot``, optional ``test``/``testannot``; without a test split
    the val images are halved, seeded, into val and test); a VOC folder (``JPEGImages``,
    ``SegmentationClass``: the train list trains, the val list is halved into val and test);
    or a COCO annotation JSON (10 % of the images, seeded, validate, another 10 % test).
    ``*_images`` keep the first that many of a split (None: all)."""
    def cut(dataset, count):
        return dataset.subset(range(min(count, len(dataset)))) if count else dataset

    def splits(train, val, test):
        return SegmentationSplits(cut(train, train_images), cut(val, val_images), cut(test, test_images))

    if data == "digit-scenes":
        return SegmentationSplits(digit_scene_segmentation("train", train_images or 1000, seed=seed),
                                  digit_scene_segmentation("val", val_images or 50, seed=seed),
                                  digit_scene_segmentation("test", test_images or 100, seed=seed))
    path = Path(data)
    if path.is_dir() and (path / "trainannot").is_dir():
        val = load_camvid(path, "val")
        held_out = [val, load_camvid(path, "test")] if (path / "testannot").is_dir() else seeded_split(val, seed, len(val) // 2)
        return splits(load_camvid(path, "train"), *held_out)
    if path.is_dir() and (path / "SegmentationClass").is_dir():
        val = load_voc(path, "val")
        return splits(load_voc(path, "train"), *seeded_split(val, seed, len(val) // 2))
    if path.suffix == ".json":
        dataset = coco_class_masks(path, image_dir, strict=not lenient)
        held_out = max(1, len(dataset) // 10)
        val, test, train = seeded_split(dataset, seed, held_out, held_out)
        return splits(train, val, test)
    if not path.exists():
        raise FileNotFoundError(f"{data}: no such dataset (expected digit-scenes, a CamVid or VOC folder, "
                                "or a COCO annotation JSON)")
    raise ValueError(f"{data}: not a segmentation dataset (expected a folder with train/ and trainannot/, a VOC "
                     "folder with JPEGImages/ and SegmentationClass/, or a COCO annotation JSON)")


def run_splits(config: dict) -> SegmentationSplits:
    """The splits a segmentation run trained on, from its config as a dict (`SegmentationConfig`
    or the config of an older cnnkit's run: only the data fields are read). The sliding window,
    which classifies H·W patches per image, validates on 10 images unless told."""
    val_images = config.get("val_images") or (10 if config.get("method") == "sliding" else None)
    return load_segmentation_data(config["data"], config.get("image_dir"), config.get("seed", 0),
                                  config.get("train_images"), val_images, config.get("test_images"),
                                  config.get("lenient", False))
