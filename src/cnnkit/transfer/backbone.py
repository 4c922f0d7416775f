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
from cnnkit.models import create_model, list_models
from cnnkit.models.weights import (
    WeightsMismatchError,
    strip_wrapper_prefixes,
    load_weights,
    read_state_dict,
)
from cnnkit.train.checkpoint import BEST, LAST, CorruptCheckpointError, load_checkpoint
from cnnkit.train.trained import load_trained

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
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
    classes: list[str] | None = None
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
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"pretrained weights or run not found: {path}")
    if path.is_dir():
        if not ((path / BEST).exists() or (path / LAST).exists()):
            raise ValueError(f"{path} is a folder but not a cnnkit run (no {BEST} or {LAST}); "
                             "pass a run folder, a checkpoint or a weights file")
        return _from_run(path, mean, std)
    if path.suffix == ".pt" and _is_cnnkit_checkpoint(path):
        return _from_run(path, mean, std)
    return _from_weights(path, architecture, mean, std)


def _is_cnnkit_checkpoint(path: Path) -> bool:
    try:
        load_checkpoint(path)
    except CorruptCheckpointError as error:
        if "not a cnnkit training checkpoint" in str(error):
            return False
        raise
    return True


def _from_run(path: Path, mean, std) -> Pretrained:
    trained = load_trained(path)
    return Pretrained(
        model=trained.model, architecture=trained.config.model, mean=list(mean or trained.mean),
        std=list(std or trained.std), image_size=trained.image_size, in_channels=trained.in_channels,
        source=path, fingerprint=file_fingerprint(trained.checkpoint), classes=list(trained.classes),
    )


def _from_weights(path: Path, architecture: str | None, mean, std) -> Pretrained:
    state, metadata = read_state_dict(path)
    notes = []
    architecture = architecture or metadata.get("architecture")
    if architecture is None:
        architecture = recognise_architecture(state, path)
        notes.append(f"architecture recognised from the tensors: {architecture}")
    num_classes, in_channels = _head_and_input_sizes(architecture, state)
    model = create_model(architecture, num_classes=num_classes, in_channels=in_channels)
    try:
        load_weights(model, path)
    except WeightsMismatchError as error:
        detail = "; ".join(line.strip() for line in str(error).splitlines()[1:] if "strict=False" not in line)
        raise WeightsMismatchError(
            f"{path} does not fit architecture {architecture!r}: {detail}; name the right one (--model)"
        ) from None
    model.eval()
    channels = model.default_input_size[0]
    if mean is None and "mean" not in metadata:
        notes.append("no normalisation stored with the weights: ImageNet mean and std assumed")
    default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ([0.5], [0.25])
    image_size = metadata.get("image_size") or model.default_input_size[1:]
    return Pretrained(
        model=model, architecture=architecture, mean=list(mean or metadata.get("mean") or default_mean),
        std=list(std or metadata.get("std") or default_std), image_size=(int(image_size[0]), int(image_size[1])),
        in_channels=channels, source=path, fingerprint=file_fingerprint(path),
        classes=metadata.get("class_names"), notes=notes,
    )


def recognise_architecture(state: dict[str, torch.Tensor], path: Path | str = "weights") -> str:
    """The registered model whose tensors match ``state`` by name and shape, classifier and
    first convolution's input channels aside. Models are built on the meta device (no memory).

    Raises `WeightsMismatchError` naming the closest models when none matches.
    """
    scores = []
    for name in list_models():
        with torch.device("meta"):
            candidate = create_model(name)
        if not getattr(candidate, "classifier_name", None):
            continue  # not a classifier: nothing to transfer from
        expected = {key: tuple(t.shape) for key, t in candidate.state_dict().items()
                    if not key.endswith("num_batches_tracked")}
        given = strip_wrapper_prefixes(
            {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, expected)
        head = candidate.classifier_name + "."
        flexible = {key for key in expected if key.startswith(head)} | {_first_conv_key(candidate)}
        matched = sum(1 for key, shape in expected.items()
                      if key in given and (key in flexible or tuple(given[key].shape) == shape))
        if matched == len(expected) == len(given):
            return name
        scores.append((matched / max(len(expected), len(given)), name))
    closest = ", ".join(f"{name} ({score:.0%} of tensors)" for score, name in sorted(scores, reverse=True)[:3])
    raise WeightsMismatchError(
        f"{path}: no registered architecture has exactly these {len(state)} tensors; closest: {closest}. "
        "Pass the architecture explicitly (--model NAME) to see which keys differ"
    )


def _first_conv_key(model: nn.Module) -> str:
    name = next(name for name, module in model.named_modules() if isinstance(module, nn.Conv2d))
    return f"{name}.weight"


def _head_and_input_sizes(architecture: str, state: dict) -> tuple[int | None, int | None]:
    """Number of classes and input channels the file's classifier and first convolution have."""
    with torch.device("meta"):
        model = create_model(architecture)
    model_state = model.state_dict()
    state = strip_wrapper_prefixes(state, model_state)
    head = state.get(f"{model.classifier_name}.weight")
    conv = state.get(_first_conv_key(model))
    num_classes = int(head.shape[0]) if head is not None else None
    in_channels = int(conv.shape[1]) if conv is not None and conv.dim() == 4 else None
    return num_classes, in_channels


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
