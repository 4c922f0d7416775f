"""Which registered architecture a state dict belongs to, from its tensor names and shapes.

A plain weights file (torchvision's ``resnet18-f37072fd.pth``, the CIFAR-10 ResNets'
``resnet20-12fca82f.th``) names no architecture; every registered classifier is built on the
meta device (no memory) and the one whose tensors match by name and shape, the classifier and
the first convolution's input channels aside, is it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnkit.models.registry import create_model, list_models
from cnnkit.models.weights import WeightsMismatchError, strip_wrapper_prefixes


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
        flexible = {key for key in expected if key.startswith(head)} | {first_conv_key(candidate)}
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


def first_conv_key(model: nn.Module) -> str:
    name = next(name for name, module in model.named_modules() if isinstance(module, nn.Conv2d))
    return f"{name}.weight"


def head_and_input_sizes(architecture: str, state: dict) -> tuple[int | None, int | None]:
    """Number of classes and input channels the file's classifier and first convolution have."""
    with torch.device("meta"):
        model = create_model(architecture)
    model_state = model.state_dict()
    state = strip_wrapper_prefixes(state, model_state)
    head = state.get(f"{model.classifier_name}.weight")
    conv = state.get(first_conv_key(model))
    num_classes = int(head.shape[0]) if head is not None else None
    in_channels = int(conv.shape[1]) if conv is not None and conv.dim() == 4 else None
    return num_classes, in_channels
