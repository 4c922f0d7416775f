"""The model registry: architectures by name.

Each family module decorates its builder functions with :func:`register_model`; the builder's
function name is the model's name. :func:`create_model` looks a name up, builds the model and
optionally loads weights; :func:`list_models` lists the names.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable

import torch
from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``builder`` under its function name and return it unchanged.

    A builder takes ``num_classes`` and ``in_channels`` keywords (with its own defaults) and
    returns an ``nn.Module``. Registering a second builder under a taken name raises ``ValueError``.
    """
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is already registered (by {_BUILDERS[name].__module__})")
    _BUILDERS[name] = builder
    return builder


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_BUILDERS)


def create_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    memory_format: torch.memory_format = torch.channels_last,
    **kwargs,
) -> nn.Module:
    """Build the model registered as ``name``, then load ``weights`` (a file path) if given.

    The model's 4-D weights are stored in ``memory_format``, channels_last by default: oneDNN's
    CPU convolutions run 1.2-1.6× faster for training and 1.3-2.4× for inference in that layout
    (``benchmarks/models.py``), and inputs in the usual NCHW layout need no change. Pass
    ``torch.contiguous_format`` for the plain layout. The name is kept as ``model.architecture``.

    ``num_classes`` and ``in_channels`` left as None take the builder's defaults (1000 and 3 for
    ImageNet models, 10 for the CIFAR ResNets and LeNets, 1 input channel for LeNet-5); other
    keyword arguments go to the builder. Weights are loaded by
    :func:`cnnkit.models.weights.load_weights`. An unknown name raises ``ValueError`` naming
    the closest registered names.
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        close = difflib.get_close_matches(name, _BUILDERS, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known models: {', '.join(list_models())}"
        raise ValueError(f"unknown model {name!r}; {hint}")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    model = builder(**kwargs).to(memory_format=memory_format)
    model.architecture = name
    if weights is not None:
        from cnnkit.models.weights import load_weights

        load_weights(model, weights)
    return model


def create_classifier(name: str, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> nn.Module:
    """`create_model` for ``num_classes``, ``in_channels`` and images of ``image_size`` (H, W):
    models whose builder takes an ``input_size`` (fully connected layers sized for the input,
    as LeNets) get the image's height. Raises ValueError for a non-square image such a model
    cannot take."""
    model = create_model(name, num_classes=num_classes, in_channels=in_channels)
    height, width = image_size
    wanted = tuple(getattr(model, "default_input_size", (in_channels, height, width))[1:])
    if wanted != (height, width) and "input_size" in inspect.signature(type(model).__init__).parameters:
        if height != width:
            raise ValueError(f"{name} takes square images; the data is {height}×{width} (pass image_size)")
        model = create_model(name, num_classes=num_classes, in_channels=in_channels, input_size=height)
    return model
