"""The dataset structure every reader returns: three splits of images with labels, and metadata.

An :class:`ImageSet` holds one split. Small sets are decoded once and kept as one
``(N, C, H, W)`` tensor (uint8 or float32), so a training batch is a single tensor index
(:meth:`ImageSet.batch`) with no per-sample Python; large sets keep file paths and decode each
item on demand (``__getitem__``), for a ``DataLoader`` with workers. A :class:`Dataset` bundles
the train/validation/test splits with the class names, the image geometry, the per-channel
statistics of the training split and the files skipped as unreadable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cnnkit.data.images import read_image
from cnnkit.data.transforms import resize

SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
"""Train / validation / test fractions for data that comes without a split of its own."""

VALIDATION_FRACTION = 0.1
"""Share of an official training split held out for validation (e.g. 54,000 / 6,000 for MNIST)."""


def set_channels(image: Tensor, channels: int) -> Tensor:
    """Convert ``(..., C, H, W)`` to 1 channel (luminance 0.299 R + 0.587 G + 0.114 B) or 3 (gray repeated)."""
    have = image.shape[-3]
    if have == channels:
        return image
    if channels == 1 and have == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
        return (image * weights[:, None, None]).sum(-3, keepdim=True)
    if channels == 3 and have == 1:
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).clone()
    raise ValueError(f"cannot convert {have} channels to {channels}")


def to_uint8(images: Tensor) -> Tensor:
    """Quantise float images in [0, 1] to uint8: round(255 x)."""
    return images.clamp(0, 1).mul(255).round_().to(torch.uint8)


class ImageSet(torch.utils.data.Dataset):
    """One split: ``len(s)`` images, ``s[i] = (x, y)`` with ``x`` float32 ``(C, H, W)`` in [0, 1].

    In memory (``in_memory=True``): ``images`` is ``(N, C, H, W)`` uint8 (values/255) or float32
    in [0, 1], ``files`` is None. Streamed: ``images`` is None and ``files`` lists N paths, each
    read with :func:`~cnnkit.data.images.read_image`, converted to ``channels`` and resized to
    ``image_size`` when accessed. ``labels`` is a ``(N,)`` int64 tensor either way. ``names``:
    where each image came from (its file, for images decoded into memory), or None for data
    that has no files (built-in sets); streamed sets are named by their files.
    """

    def __init__(
        self,
        labels: Tensor,
        images: Tensor | None = None,
        files: Sequence[str | os.PathLike] | None = None,
        image_size: tuple[int, int] | None = None,
        channels: int | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        if (images is None) == (files is None):
            raise ValueError("an ImageSet holds either images (in memory) or files (streamed), not both")
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if images is not None:
            if images.dim() != 4 or images.dtype not in (torch.uint8, torch.float32):
                raise ValueError(f"images must be (N, C, H, W) uint8 or float32, got {tuple(images.shape)} {images.dtype}")
            if len(images) != len(self.labels):
                raise ValueError(f"{len(images)} images but {len(self.labels)} labels")
            image_size = tuple(images.shape[-2:])
            channels = images.shape[1]
        else:
            files = [str(path) for path in files]
            if len(files) != len(self.labels):
                raise ValueError(f"{len(files)} files but {len(self.labels)} labels")
            if image_size is None or channels is None:
                raise ValueError("a streamed ImageSet needs image_size and channels")
        self.images = images
        self.files = files
        self.names = files if names is None else [str(name) for name in names]
        if self.names is not None and len(self.names) != len(self.labels):
            raise ValueError(f"{len(self.names)} names but {len(self.labels)} labels")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        where = f"in memory ({self.images.dtype})" if self.in_memory else "streamed from files"
        return f"ImageSet({len(self)} images, {self.channels}×{self.image_size[0]}×{self.image_size[1]}, {where})"

    def read(self, index: int) -> Tensor:
        """The image ``index`` as float32 ``(C, H, W)`` in [0, 1]."""
        if self.images is not None:
            image = self.images[index]
            return image.float().div_(255) if image.dtype == torch.uint8 else image
        image = read_image(self.files[index])
        return resize(set_channels(image, self.channels), self.image_size)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.read(index), int(self.labels[index])

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Images and labels at ``indices``: x float32 ``(B, C, H, W)`` in [0, 1], y int64 ``(B,)``.

        In memory this is one tensor index and one conversion; streamed it reads B files.
        """
        indices = torch.as_tensor(indices, dtype=torch.int64)
        if self.images is not None:
            x = self.images[indices]  # (B, C, H, W)
            x = x.float().div_(255) if x.dtype == torch.uint8 else x
        else:
            x = torch.stack([self.read(int(i)) for i in indices]) if len(indices) else self._empty()
        return x, self.labels[indices]

    def _empty(self) -> Tensor:
        return torch.empty(0, self.channels, *self.image_size)

    def subset(self, indices: Tensor) -> ImageSet:
        """The images at ``indices``, as a new ImageSet (in memory: a copy of those rows)."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        names = None if self.names is None else [self.names[int(i)] for i in indices]
        if self.images is not None:
            return ImageSet(self.labels[indices], images=self.images[indices], names=names)
        return ImageSet(self.labels[indices], files=names, image_size=self.image_size, channels=self.channels)

    def class_counts(self, num_classes: int) -> Tensor:
        """Images per class, ``(num_classes,)`` int64."""
        return torch.bincount(self.labels, minlength=num_classes)


def channel_statistics(images: ImageSet, max_streamed: int = 2000, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the pixel values in [0, 1].

    mean_c = Σ x / n and std_c = sqrt(Σ x² / n − mean_c²) over all pixels of channel c. In-memory
    sets use every image (accumulated in float64, in chunks); streamed sets a seeded sample of at
    most ``max_streamed`` images.
    """
    if len(images) == 0:
        return [0.0] * images.channels, [1.0] * images.channels
    if images.in_memory:
        order = torch.arange(len(images))
    else:
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(images), generator=generator)[:max_streamed]
    total = torch.zeros(images.channels, dtype=torch.float64)
    squares = torch.zeros(images.channels, dtype=torch.float64)
    count = 0
    for chunk in order.split(4096 if images.in_memory else 64):
        x, _ = images.batch(chunk)
        x = x.double()
        total += x.sum((0, 2, 3))
        squares += x.square().sum((0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return mean.tolist(), std.clamp_min(1e-6).tolist()


def stratified_split(
    labels: Tensor, fractions: Sequence[float], seed: int
) -> list[Tensor]:
    """Split indices 0..N-1 into ``len(fractions)`` parts with the class proportions of ``labels``.

    Each class's indices are shuffled by a generator seeded with ``seed``; the later parts take
    round(n_c · fraction) of each class (at least one when the class has more items than parts)
    and the first part keeps the rest. Returns sorted ``(n_k,)`` int64 index tensors, disjoint.
    """
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[] for _ in fractions]
    labels = torch.as_tensor(labels, dtype=torch.int64)
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        start = 0
        for k in range(len(fractions) - 1, 0, -1):
            take = round(len(members) * fractions[k])
            if take == 0 and fractions[k] > 0 and len(members) > len(fractions):
                take = 1
            parts[k].append(members[start : start + take])
            start += take
        parts[0].append(members[start:])
    return [torch.sort(torch.cat(part)).values if part else torch.empty(0, dtype=torch.int64) for part in parts]


@dataclass
class Dataset:
    """A classification dataset: three :class:`ImageSet` splits and what a run report needs.

    ``mean`` and ``std`` are per channel, computed from the training split; ``augmentation`` is
    the recommended preset of :func:`cnnkit.data.transforms.augmentation` (digits are never
    flipped); ``skipped`` lists ``(path, reason)`` for unreadable files left out with
    ``skip_bad=True``.
    """

    name: str
    classes: list[str]
    train: ImageSet
    val: ImageSet
    test: ImageSet
    in_channels: int
    image_size: tuple[int, int]
    mean: list[float]
    std: list[float]
    augmentation: str = "none"
    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> ImageSet:
        """The split called ``name``: "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)

    def to_dict(self) -> dict:
        """Metadata for a run report or JSON output: names, sizes, geometry, statistics; no tensors."""
        return {
            "name": self.name,
            "source": self.source,
            "classes": list(self.classes),
            "num_classes": self.num_classes,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "mean": [round(value, 6) for value in self.mean],
            "std": [round(value, 6) for value in self.std],
            "augmentation": self.augmentation,
            "in_memory": self.train.in_memory,
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
        }

    def split_files(self) -> dict[str, list[str]] | None:
        """The files of each split (train, val, test), or None for data without files."""
        if self.train.names is None:
            return None
        return {split: list(getattr(self, split).names) for split in ("train", "val", "test")}


def build_dataset(
    name: str,
    classes: Sequence[str],
    splits: tuple[ImageSet, ImageSet, ImageSet],
    augmentation: str = "none",
    source: str = "",
    skipped: Sequence[tuple[str, str]] = (),
) -> Dataset:
    """Bundle three splits into a :class:`Dataset`, computing the statistics of the training split."""
    train, val, test = splits
    mean, std = channel_statistics(train)
    return Dataset(
        name=name,
        classes=list(classes),
        train=train,
        val=val,
        test=test,
        in_channels=train.channels,
        image_size=train.image_size,
        mean=mean,
        std=std,
        augmentation=augmentation,
        source=source,
        skipped=list(skipped),
    )


def split_image_set(images: ImageSet, seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> tuple[ImageSet, ...]:
    """Split one ImageSet into train/val/test by :func:`stratified_split`."""
    return tuple(images.subset(part) for part in stratified_split(images.labels, fractions, seed))

