"""Pretrained networks from wherever a user has them, and the target data fitted to them.

`load_pretrained` accepts a cnnkit run folder or checkpoint (the model, its classes and input
normalisation come from the run), a safetensors file written by `save_weights` (its metadata
names the architecture and normalisation), or a plain state dict such as torchvision's
``resnet18-f37072fd.pth`` or the CIFAR-10 ResNets' ``resnet20-12fca82f.th``, whose architecture
is recognised by matching tensor names and shapes against every registered model. Files
without metadata are assumed to expect the ImageNet normalisation, the convention of
torchvision's weights and of those CIFAR ResNets.

`load_target` loads the target dataset at the pretrained input size, and `adapt_input` gives a
model the target's channel count; both say what they changed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnkit.data import Dataset, load_dataset
from cnnkit.inference import open_model

LUMINANCE = (0.299, 0.587, 0.114)


@dataclass
class Pretrained:
    """A pretrained classifier and what its inputs must look like.

    model: in eval mode with its original classifier. architecture: the `create_model` name.
    mean, std: per-channel normalisation of images in [0, 1] it was trained with.
    image_size: (H, W) of its training images; in_channels: C. classes: its class names when
    known. source: the file or run folder. fingerprint: SHA-256 of the weights file (keys the
    feature cache).
    """

    model: nn.Module
    architecture: str
    mean: list[float]
    std: list[float]
    image_size: tuple[int, int]
    in_channels: int
    source: Path
    fingerprint: str
    classes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def classifier_name(self) -> str:
        return self.model.classifier_name


def load_pretrained(
    source: str | os.PathLike,
    architecture: str | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
) -> Pretrained:
    """Load a pretrained model from a run folder, a cnnkit checkpoint or a weights file.

    architecture: the registered model name; None reads it from the run or safetensors
        metadata, else recognises it from the file's tensor names and shapes.
    mean, std: override the input normalisation (default: the run's, the metadata's, else
        ImageNet's).

    Raises FileNotFoundError for a missing path, ValueError for a folder that is not a run,
    `WeightsMismatchError` when the weights do not fit ``architecture`` (or no registered
    architecture), and the errors of `cnnkit.models.weights.load_weights` for unsafe or
    corrupt files.
    """
    opened = open_model(source, architecture)
    if opened.task != "classification":
        raise ValueError(f"{source} holds a {opened.task} model; transfer starts from a classifier")
    notes = [note for note in opened.notes if mean is None or not note.startswith("no normalisation")]
    return Pretrained(
        model=opened.model, architecture=opened.architecture, mean=list(mean or opened.mean),
        std=list(std or opened.std), image_size=opened.image_size, in_channels=opened.in_channels,
        source=Path(source), fingerprint=file_fingerprint(opened.source), classes=opened.classes, notes=notes,
    )


def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the target data ----------------------------------------------------------------------


def load_target(data: str | os.PathLike | Dataset, pretrained: Pretrained, data_root=None, seed: int = 0) -> tuple[Dataset, list[str]]:
    """The target dataset at the pretrained image size, checked, and the adaptations made.

    A dataset of another image size is loaded again resized to the pretrained size (the
    network's filters and receptive fields were learnt at that scale). Raises ValueError for
    a dataset with fewer than two classes or classes without training examples.
    """
    notes = []
    dataset = data if isinstance(data, Dataset) else load_dataset(data, data_root, seed=seed)
    if tuple(dataset.image_size) != tuple(pretrained.image_size):
        native = dataset.image_size
        if isinstance(data, Dataset):
            raise ValueError(f"{dataset.name}: images are {native[0]}×{native[1]} but the pretrained network "
                             f"expects {pretrained.image_size[0]}×{pretrained.image_size[1]}; load it with "
                             f"image_size={pretrained.image_size[0]}")
        dataset = load_dataset(data, data_root, seed=seed, image_size=pretrained.image_size)
        notes.append(f"images resized from {native[0]}×{native[1]} to the pretraining size "
                     f"{pretrained.image_size[0]}×{pretrained.image_size[1]}")
    check_target(dataset)
    if dataset.in_channels != pretrained.in_channels:
        notes.append(channel_note(dataset.in_channels, pretrained.in_channels))
    return dataset, notes


def check_target(dataset: Dataset) -> None:
    """Raise ValueError for fewer than two classes, or classes without training or validation images."""
    if dataset.num_classes < 2:
        raise ValueError(f"{dataset.name}: {dataset.num_classes} class ({', '.join(dataset.classes)}); "
                         "a classifier needs at least two classes")
    for split in ("train", "val"):
        counts = dataset.split(split).class_counts(dataset.num_classes)
        empty = [name for name, count in zip(dataset.classes, counts.tolist()) if count == 0]
        if empty:
            raise ValueError(f"{dataset.name}: class(es) {', '.join(empty)} have no {split} images; "
                             "add images or remove those classes")


def channel_note(data_channels: int, model_channels: int) -> str:
    if data_channels == 1 and model_channels == 3:
        return ("grey images on a colour network: the first convolution's filters summed over R, G, B "
                "(the grey image repeated in 3 channels), normalised with the channels' mean statistics")
    if data_channels == 3 and model_channels == 1:
        return ("colour images on a grey network: the first convolution applied to the luminance "
                "0.299 R + 0.587 G + 0.114 B")
    raise ValueError(f"cannot adapt {data_channels}-channel images to a {model_channels}-channel network")


def adapt_input(model: nn.Module, mean: list[float], std: list[float], channels: int) -> tuple[list[float], list[float]]:
    """Change ``model``'s first convolution, in place, to take ``channels`` input channels.

    3 → 1: W' = Σ_c W_c, so conv(x) = conv(x repeated in 3 channels) before normalisation;
    the normalisation becomes the mean of the channels' means and of their standard deviations
    (exact when the channels' statistics are equal, close for ImageNet's).
    1 → 3: W'_c = λ_c W with λ = (0.299, 0.587, 0.114), so conv(x) = conv(luminance(x)); the
    single mean and std are repeated (exact). Returns the normalisation for the new input.
    """
    conv = next(module for module in model.modules() if isinstance(module, nn.Conv2d))
    have = conv.in_channels
    if have == channels:
        return mean, std
    channel_note(channels, have)  # raises for other combinations
    weight = conv.weight.detach()  # (C_out, C_in, kh, kw)
    if channels == 1:
        new = weight.sum(1, keepdim=True)
        mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
    else:
        new = weight * torch.tensor(LUMINANCE, dtype=weight.dtype)[None, :, None, None]
        mean, std = mean * 3, std * 3
    conv.weight = nn.Parameter(new.contiguous(memory_format=torch.channels_last), requires_grad=conv.weight.requires_grad)
    conv.in_channels = channels
    if hasattr(model, "default_input_size"):
        model.default_input_size = (channels, *model.default_input_size[1:])
    return mean, std
