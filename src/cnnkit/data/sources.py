"""One entry point for every dataset: :func:`load_dataset` by name, format or path."""

from __future__ import annotations

import os
from pathlib import Path

from cnnkit.data.builtin import BUILTINS
from cnnkit.data.dataset import Dataset

FORMATS = ("mnist", "fashion-mnist", "cifar10", "cifar100")
"""Standard formats read from ``root`` (or downloaded into it)."""


def list_datasets() -> list[str]:
    """Names :func:`load_dataset` accepts besides paths: the built-ins, then the standard formats."""
    return [*BUILTINS, *FORMATS]


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
    validation is carved from the training split by ``seed``), or a path: a folder with one
    sub-folder per class (or ``train/``, ``val/``, ``test/`` folders of those), or a ``.csv``
    of ``path,label`` rows; without their own split they are split 70/15/15 % by ``seed``,
    stratified by class.

    ``image_size`` (int or (H, W)) resizes every image; None keeps the source's size (for a
    folder, the size of its first image). ``skip_bad=True`` leaves unreadable images out and
    lists them in ``Dataset.skipped`` instead of raising. ``in_memory`` forces holding decoded
    images as tensors (True) or streaming from files (False); None decides by decoded size.

    Raises:
        ValueError: unknown source (the message lists the choices), bad or unreadable data.
        FileNotFoundError: a missing root or path.
        RuntimeError: a download that failed (the message names the dataset and URL).
    """
    name = str(source)
    if name in BUILTINS:
        return BUILTINS[name](image_size)
    raise ValueError(
        f"unknown dataset {name!r}: expected one of {', '.join(list_datasets())}, "
        "a folder of class sub-folders, or a .csv of path,label"
    )
