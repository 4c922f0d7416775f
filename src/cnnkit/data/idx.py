"""MNIST and Fashion-MNIST: the IDX files of LeCun et al., raw or gzipped, checked as they are read.

An IDX file is a 4-byte magic number ``0x00 0x00 TYPE NDIM``, NDIM big-endian uint32 sizes, then
prod(sizes) values of TYPE, big-endian. The magic number, the sizes and the file's length are
checked before the data are read: a wrong file gets an error that names it and says what is
wrong, not a reshape error later. The official test split (10,000 images) is kept; validation
is carved from the 60,000 training images, stratified, by the seed.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from cnnkit.data.dataset import VALIDATION_FRACTION, Dataset, ImageSet, build_dataset, stratified_split, to_uint8
from cnnkit.data.transforms import resize

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
"""IDX type codes and their numpy dtypes."""

MAX_IDX_BYTES = 2**32
"""Largest IDX payload read (4 GiB); a header claiming more is refused."""

CLASSES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
"""Where torchvision's downloader puts the files: ``ROOT/NAME/raw/``."""


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) as a numpy array of its type and shape.

    Raises ``ValueError`` naming the file when the magic number is wrong (or has another number
    of dimensions than ``ndim``), the header claims more than :data:`MAX_IDX_BYTES`, or the
    data are shorter or longer than the header says; checked before the data are read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with _open(path) as stream:
            magic = stream.read(4)
            if len(magic) < 4:
                raise ValueError(f"{path}: {len(magic)} bytes, too short for an IDX header")
            if magic[0] or magic[1] or magic[2] not in IDX_TYPES or (ndim is not None and magic[3] != ndim):
                expected = f"0x0000080{ndim}" if ndim is not None else "0x0000TTNN"
                raise ValueError(
                    f"{path}: magic number 0x{magic.hex()} is not an IDX header (expected {expected}); "
                    "is this the right file?"
                )
            dtype = np.dtype(IDX_TYPES[magic[2]])
            header = stream.read(4 * magic[3])
            if len(header) < 4 * magic[3]:
                raise ValueError(f"{path}: IDX header cut short ({len(header)} of {4 * magic[3]} size bytes)")
            shape = tuple(int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(magic[3]))
            payload = math.prod(shape) * dtype.itemsize
            if payload > MAX_IDX_BYTES:
                raise ValueError(f"{path}: IDX header claims shape {shape} ({payload:,} bytes), over the limit")
            if path.suffix != ".gz":
                actual = path.stat().st_size - 4 - len(header)
                if actual != payload:
                    raise ValueError(
                        f"{path}: IDX header says shape {shape} ({payload:,} bytes of data) but the file holds "
                        f"{actual:,}; the file is truncated or not what its name says"
                    )
            data = stream.read(payload)
            if len(data) != payload or stream.read(1):
                raise ValueError(
                    f"{path}: IDX header says shape {shape} ({payload:,} bytes of data) but the file holds "
                    f"{'fewer' if len(data) != payload else 'more'}; the file is truncated or not what its name says"
                )
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: corrupt gzip file ({error})") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def find_idx(root: Path, name: str, stem: str) -> Path:
    """The file ``stem`` (raw or ``.gz``) in ``root``, ``root/raw`` or torchvision's ``root/NAME/raw``."""
    folders = [root, root / "raw", root / TORCHVISION_FOLDERS[name] / "raw"]
    for folder in folders:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"{root}: no {stem}[.gz] for {name} (looked in {', '.join(str(folder) for folder in folders)}); "
        "pass the folder holding the four IDX files, or download=True"
    )


def read_idx_split(root: Path, name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, H, W)`` uint8 and labels ``(N,)`` int64 of the ``split`` ("train"/"test")."""
    image_path, label_path = (find_idx(root, name, stem) for stem in FILES[split])
    images = read_idx(image_path, ndim=3)
    labels = read_idx(label_path, ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"{image_path}, {label_path}: expected unsigned byte IDX files")
    if len(images) != len(labels):
        raise ValueError(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels")
    if len(labels) and labels.max() >= len(CLASSES[name]):
        raise ValueError(f"{label_path}: label {labels.max()} outside 0-{len(CLASSES[name]) - 1}")
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


def load_idx_dataset(
    name: str, root: str | os.PathLike, *, image_size: tuple[int, int] | None = None, seed: int = 0
) -> Dataset:
    """MNIST or Fashion-MNIST (``name``) from the IDX files under ``root``, held in memory as uint8."""
    root = Path(root)
    train_images, train_labels = read_idx_split(root, name, "train")
    test_images, test_labels = read_idx_split(root, name, "test")
    if image_size is not None:
        train_images, test_images = (to_uint8(resize(images, image_size)) for images in (train_images, test_images))
    train_part, val_part = stratified_split(train_labels, (1 - VALIDATION_FRACTION, VALIDATION_FRACTION), seed)
    everything = ImageSet(train_labels, images=train_images)
    splits = (everything.subset(train_part), everything.subset(val_part), ImageSet(test_labels, images=test_images))
    return build_dataset(name, CLASSES[name], splits, augmentation="crop", source=str(root))
