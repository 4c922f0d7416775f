"""One entry point for every dataset: :func:`load_dataset` by name, format or path."""

from __future__ import annotations

import os
from pathlib import Path

from cnnkit.data import cifar, idx
from cnnkit.data.builtin import BUILTINS
from cnnkit.data.dataset import Dataset
from cnnkit.data.folders import list_image_folder, load_csv, load_image_folder

FORMATS = ("mnist", "fashion-mnist", "cifar10", "cifar100")
"""Standard formats read from ``root`` (or downloaded into it)."""


def list_datasets() -> list[str]:
    """Names :func:`load_dataset` accepts besides paths: the built-ins, then the standard formats."""
    return [*BUILTINS, *FORMATS]


def _downloader(name: str):
    from torchvision import datasets

    return {
        "mnist": datasets.MNIST,
        "fashion-mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }[name]


def download_dataset(name: str, root: str | os.PathLike) -> None:
    """Download the standard dataset ``name`` into ``root`` with torchvision's downloader.

    torchvision verifies the archives' MD5. Any failure (no network, a refused connection, a
    bad archive) becomes a ``RuntimeError`` naming the dataset, the URL and what to do instead.
    """
    downloader = _downloader(name)
    url = getattr(downloader, "url", None) or " or ".join(downloader.mirrors)
    try:
        downloader(str(root), train=True, download=True)
        downloader(str(root), train=False, download=True)
    except Exception as error:  # urllib.error.URLError, OSError, RuntimeError from torchvision's mirrors
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RuntimeError(
            f"could not download {name} from {url} into {root}: {reason}. Check the network, or fetch "
            f"the files by hand into {root} and load without download"
        ) from error


def load_dataset(
    source: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    image_size: int | tuple[int, int] | None = None,
    skip_bad: bool = False,
    seed: int = 0,
    in_memory: bool | None = None,
) -> Dataset:
    """Load a dataset with fixed train/validation/test splits.

    ``source`` is a built-in name (``digits``, ``faces``, ``shapes``: offline, fixed splits), a
    standard format (``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, read from ``root``,
    downloaded there first with ``download=True``; the official test split is kept and
    validation is carved from the training split by ``seed``; ``cifar10``/``cifar100`` also
    accept a ``root`` in image-folder form), or a path: a folder with one sub-folder per class
    (or ``train/``, ``val/``, ``test/`` folders of those), or a ``.csv`` of ``path,label`` rows;
    without their own split they are split 70/15/15 % by ``seed``, stratified by class.

    ``image_size`` (int or (H, W)) resizes every image; None keeps the source's size (for a
    folder, the size of its first image). ``skip_bad=True`` leaves unreadable image files out
    and lists them in ``Dataset.skipped`` instead of raising. ``in_memory`` forces holding the
    decoded images as tensors (True) or streaming from files (False); None decides by decoded
    size (:data:`cnnkit.data.folders.MEMORY_LIMIT`). Built-ins and standard formats are always
    held in memory.

    Raises:
        ValueError: unknown source (the message lists the choices), bad or unreadable data.
        FileNotFoundError: a missing root, file or path.
        RuntimeError: a download that failed (the message names the dataset and URL).
    """
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    name = str(source)
    if name in BUILTINS:
        return BUILTINS[name](size)
    files = {"image_size": size, "skip_bad": skip_bad, "seed": seed, "in_memory": in_memory}
    if name in FORMATS:
        if root is None:
            raise ValueError(f"{name} is read from a folder: pass root=DIR (with download=True to fetch it there)")
        root = Path(root)
        if download:
            download_dataset(name, root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder for {name}; pass download=True to fetch it there")
        if name in idx.CLASSES:
            return idx.load_idx_dataset(name, root, image_size=size, seed=seed)
        if not cifar.has_batches(root, name) and list_image_folder(root)[0]:
            return load_image_folder(root, **files)  # CIFAR in image-folder form
        return cifar.load_cifar(name, root, image_size=size, seed=seed)
    path = Path(name)
    if path.is_dir():
        return load_image_folder(path, **files)
    if path.suffix.lower() == ".csv":
        return load_csv(path, **files)
    if path.exists() or os.sep in name:
        raise FileNotFoundError(f"{path}: not a folder of class sub-folders or a .csv of path,label")
    raise ValueError(
        f"unknown dataset {name!r}: expected one of {', '.join(list_datasets())}, "
        "a folder of class sub-folders, or a .csv of path,label"
    )

