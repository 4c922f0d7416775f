"""Datasets of image files: a folder with one sub-folder per class, or a CSV of ``path,label``.

Layouts of an image folder ``ROOT``:

- ``ROOT/CLASS/*.png|jpg|…``: split 70/15/15 % by the seed, stratified by class;
- ``ROOT/train/CLASS/…`` with ``ROOT/val/`` (or ``valid``, ``validation``) and/or ``ROOT/test/``:
  those splits are kept; a missing one is carved from train (10 %, stratified, by the seed).

Files are recognised by suffix (:data:`IMAGE_SUFFIXES`); hidden files and other suffixes are
ignored. Each is read by :func:`~cnnkit.data.images.read_image`, so a truncated, disguised or
oversized file gets an error naming it — or, with ``skip_bad=True``, is left out and listed in
``Dataset.skipped``. Images become the dataset's channel count (3 when any image is in colour,
else 1) and size (``image_size``, or the first image's size), resized by antialiased bilinear
interpolation. Sets up to :data:`MEMORY_LIMIT` bytes decoded (as uint8) are decoded once by a
thread pool and held in memory; larger ones are streamed, with every file's header checked
when the dataset is loaded (truncation then shows when an image is read).

The recommended augmentation is ``standard`` for images of 64 px and more, ``crop-flip`` for
smaller ones; data that must not be mirrored (text, digits) should override it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

from cnnkit.data.dataset import (
    SPLIT_FRACTIONS,
    VALIDATION_FRACTION,
    Dataset,
    ImageSet,
    build_dataset,
    set_channels,
    stratified_split,
    to_uint8,
)
from cnnkit.data.images import check_image, read_image
from cnnkit.data.transforms import resize

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".tga", ".ico")
"""File suffixes read as images (case-insensitive)."""

SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
"""Sub-folder names of a pre-split image folder and the split (0 train, 1 val, 2 test) each means."""

MEMORY_LIMIT = 2 * 1024**3
"""Largest decoded size (bytes, uint8) held in memory; larger datasets are streamed from files."""

THREADS = min(8, os.cpu_count() or 1)


def _is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def _class_folders(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if _is_image_file(path))


def _sort_classes(names: set[str]) -> list[str]:
    """Class names in numeric order when all are integers ("2" before "10"), else alphabetical."""
    if all(name.lstrip("-").isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def _label_tensor(labels: Sequence[str], classes: list[str]) -> Tensor:
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[label] for label in labels], dtype=torch.int64)


def list_image_folder(root: Path) -> tuple[list[Path], list[str], list[int] | None]:
    """Files, their class names and their split (None when the folder is not pre-split)."""
    sub_folders = {folder.name.lower(): folder for folder in _class_folders(root)}
    if "train" in sub_folders and len(set(sub_folders) & set(SPLIT_NAMES)) >= 2:
        files, labels, splits = [], [], []
        for name, folder in sub_folders.items():
            if name not in SPLIT_NAMES:
                continue
            for class_folder in _class_folders(folder):
                for path in _images_in(class_folder):
                    files.append(path)
                    labels.append(class_folder.name)
                    splits.append(SPLIT_NAMES[name])
        return files, labels, splits
    files, labels = [], []
    for class_folder in _class_folders(root):
        for path in _images_in(class_folder):
            files.append(path)
            labels.append(class_folder.name)
    return files, labels, None


def list_csv(path: Path) -> tuple[list[Path], list[str]]:
    """Rows ``path,label`` of a CSV file (an optional header ``path,label``); paths relative to it."""
    files, labels = [], []
    with open(path, newline="", encoding="utf-8") as stream:
        for line, row in enumerate(csv.reader(stream), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{line}: expected two columns 'path,label', got {len(row)}: {row!r}")
            file, label = (cell.strip() for cell in row)
            if line == 1 and (file.lower(), label.lower()) == ("path", "label"):
                continue
            if not file or not label:
                raise ValueError(f"{path}:{line}: empty path or label in {row!r}")
            files.append(path.parent / file)
            labels.append(label)
    if not files:
        raise ValueError(f"{path}: no 'path,label' rows")
    return files, labels


def _decode(path: Path, size: tuple[int, int] | None) -> Tensor | str:
    """``(C, H, W)`` uint8 of one file resized to ``size`` (None: kept), or the error message."""
    try:
        image = read_image(path)
    except (ValueError, OSError) as error:
        return str(error)
    return to_uint8(resize(image, size) if size is not None else image)


def _check(path: Path) -> tuple[int, int, int] | str:
    try:
        return check_image(path)
    except (ValueError, OSError) as error:
        return str(error)


def _keep_good(results: list, files: Sequence[Path], skip_bad: bool) -> tuple[list[int], list[tuple[str, str]]]:
    """Indices of files that read well; the bad ones raise, or are listed when ``skip_bad``."""
    good, skipped = [], []
    for i, result in enumerate(results):
        if isinstance(result, str):
            if not skip_bad:
                raise ValueError(f"{result}; pass skip_bad=True (--skip-bad) to leave bad files out and list them")
            skipped.append((str(files[i]), result))
        else:
            good.append(i)
    return good, skipped


def load_files(
    name: str,
    files: Sequence[Path],
    labels: Sequence[str],
    splits: Sequence[int] | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    skip_bad: bool = False,
    seed: int = 0,
    in_memory: bool | None = None,
    source: str = "",
) -> Dataset:
    """A :class:`Dataset` of image files with class names ``labels`` (and ``splits`` 0/1/2, if given)."""
    if not files:
        raise ValueError(f"{source or name}: no image files found (suffixes: {', '.join(IMAGE_SUFFIXES)})")
    classes = _sort_classes(set(labels))
    with ThreadPoolExecutor(THREADS) as pool:
        headers = list(pool.map(_check, files))
        good, skipped = _keep_good(headers, files, skip_bad)
        if not good:
            raise ValueError(f"{source or name}: none of the {len(files)} image files could be read")
        channels = max(headers[i][0] for i in good)
        size = image_size or tuple(headers[good[0]][1:])
        decoded_bytes = len(good) * channels * size[0] * size[1]
        if in_memory is None:
            in_memory = decoded_bytes <= MEMORY_LIMIT
        if in_memory:
            decoded = list(pool.map(lambda i: _decode(files[i], size), good))
            kept, bad = _keep_good(decoded, [files[i] for i in good], skip_bad)
            skipped += bad
            good = [good[k] for k in kept]
            images = torch.stack([set_channels(decoded[k], channels) for k in kept])  # (N, C, H, W) uint8
    label_tensor = _label_tensor([labels[i] for i in good], classes)
    everything = (
        ImageSet(label_tensor, images=images, names=[files[i] for i in good])
        if in_memory
        else ImageSet(label_tensor, files=[files[i] for i in good], image_size=size, channels=channels)
    )
    if splits is None:
        parts = stratified_split(label_tensor, SPLIT_FRACTIONS, seed)
    else:
        parts = _given_splits(torch.tensor([splits[i] for i in good]), label_tensor, seed)
    train, val, test = (everything.subset(part) for part in parts)
    preset = "standard" if min(size) >= 64 else "crop-flip"
    return build_dataset(name, classes, (train, val, test), augmentation=preset, source=source, skipped=skipped)


def _given_splits(splits: Tensor, labels: Tensor, seed: int) -> list[Tensor]:
    """Indices of splits 0, 1, 2 as given; a missing val or test split is carved from train."""
    parts = [torch.nonzero(splits == k).flatten() for k in range(3)]
    missing = [k for k in (1, 2) if len(parts[k]) == 0]
    if missing:
        train = parts[0]
        fractions = [1.0 - VALIDATION_FRACTION * len(missing)] + [VALIDATION_FRACTION] * len(missing)
        carved = stratified_split(labels[train], fractions, seed)
        parts[0] = train[carved[0]]
        for k, part in zip(missing, carved[1:]):
            parts[k] = train[part]
    return parts


def load_image_folder(root: str | os.PathLike, **options) -> Dataset:
    """An image folder (see the module docstring) as a :class:`Dataset` named after the folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    files, labels, splits = list_image_folder(root)
    if not files:
        raise ValueError(
            f"{root}: no images in class sub-folders; expected {root}/CLASS/IMAGE or {root}/train/CLASS/IMAGE"
        )
    return load_files(root.name, files, labels, splits, source=str(root), **options)


def load_csv(path: str | os.PathLike, **options) -> Dataset:
    """A CSV of ``path,label`` rows (paths relative to the CSV) as a :class:`Dataset`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    files, labels = list_csv(path)
    return load_files(path.stem, files, labels, source=str(path), **options)
