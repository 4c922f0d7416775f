"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): the python pickle batches, checked before unpickling.

Every batch file's MD5 must equal the published checksum (:data:`CHECKSUMS`, the values
torchvision lists) before it is unpickled, so only the official files are ever unpickled; and
even those through an unpickler that admits nothing but numpy arrays. Images are (N, 3, 32, 32)
uint8 held in memory; the official test split is kept and validation carved from the 50,000
training images, stratified, by the seed. The image-folder form of CIFAR
(``ROOT/train/CLASS/*.png``, ``ROOT/test/…``) is read by :mod:`cnnkit.data.folders`.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from cnnkit.data.dataset import VALIDATION_FRACTION, Dataset, ImageSet, build_dataset, stratified_split, to_uint8
from cnnkit.data.transforms import resize

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
"""The folder each archive unpacks to, inside ``root``."""

BATCHES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "meta": "batches.meta"},
    "cifar100": {"train": ["train"], "test": ["test"], "meta": "meta"},
}

CHECKSUMS = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}
"""Published MD5 of each file (as listed by ``torchvision.datasets.CIFAR10``/``CIFAR100``)."""

LABEL_KEYS = {"cifar10": ("labels", "label_names"), "cifar100": ("fine_labels", "fine_label_names")}

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds plain containers and numpy arrays, and refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def file_md5(path: Path) -> str:
    """Hex MD5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _text_keys(value):
    if isinstance(value, dict):
        return {(key.decode("latin1") if isinstance(key, bytes) else key): item for key, item in value.items()}
    return value


def read_batch(path: Path, name: str) -> dict:
    """Verify ``path``'s MD5 against :data:`CHECKSUMS`, then unpickle it (numpy arrays only)."""
    if not path.is_file():
        expected = ", ".join(CHECKSUMS[name])
        raise FileNotFoundError(f"{path}: no such file; {name} needs {expected} in {path.parent} (or download=True)")
    expected = CHECKSUMS[name].get(path.name)
    actual = file_md5(path)
    if actual != expected:
        raise ValueError(
            f"{path}: MD5 {actual} is not the published checksum {expected} of {name}'s {path.name}; "
            "refusing to unpickle it (download the file again)"
        )
    try:
        with open(path, "rb") as stream:
            return _text_keys(_ArrayUnpickler(io.BufferedReader(stream), encoding="latin1").load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a CIFAR batch ({error})") from None


def _images_and_labels(path: Path, name: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch = read_batch(path, name)
    label_key = LABEL_KEYS[name][0]
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        raise ValueError(f"{path}: a CIFAR batch needs 'data' and {label_key!r}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path}: expected data of shape (N, 3072) uint8 and N labels, got {data.shape} {data.dtype}, {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: labels outside 0-{num_classes - 1}")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)  # (N, 3, 32, 32)


def load_cifar(
    name: str, root: str | os.PathLike, *, image_size: tuple[int, int] | None = None, seed: int = 0
) -> Dataset:
    """CIFAR-10 or CIFAR-100 (``name``) from ``root/cifar-10-batches-py`` (or ``root`` itself)."""
    root = Path(root)
    folder = root / FOLDERS[name] if (root / FOLDERS[name]).is_dir() else root
    meta = read_batch(folder / BATCHES[name]["meta"], name)
    classes = [str(label) for label in meta[LABEL_KEYS[name][1]]]
    parts = {}
    for split in ("train", "test"):
        loaded = [_images_and_labels(folder / file, name, len(classes)) for file in BATCHES[name][split]]
        images = torch.cat([images for images, _ in loaded])
        if image_size is not None:
            images = to_uint8(resize(images, image_size))
        parts[split] = ImageSet(torch.cat([labels for _, labels in loaded]), images=images)
    train_part, val_part = stratified_split(parts["train"].labels, (1 - VALIDATION_FRACTION, VALIDATION_FRACTION), seed)
    splits = (parts["train"].subset(train_part), parts["train"].subset(val_part), parts["test"])
    return build_dataset(name, classes, splits, augmentation="crop-flip", source=str(folder))


def has_batches(root: Path, name: str) -> bool:
    """Whether ``root`` holds the pickle batches of ``name`` (in its archive folder or directly)."""
    meta = BATCHES[name]["meta"]
    return (root / FOLDERS[name] / meta).is_file() or (root / meta).is_file()
