"""What a layer holds and what it responds with: kernels and feature maps, by layer name.

A layer is named by its module path (``features.0``, ``layer2.1.conv1``) or, for VGG, by the
paper's name (``conv1_1``, ``relu4_2``, ``pool5``; see ``VGG.layer_names``).
"""

from __future__ import annotations

import difflib

import torch
from torch import Tensor, nn

from cnnkit.models import extract_features


def resolve_layer(model: nn.Module, name: str) -> str:
    """The module path for ``name``; raises ``ValueError`` with close and example names if unknown."""
    paper_names = getattr(model, "layer_names", {})
    if name in paper_names:
        return paper_names[name]
    modules = dict(model.named_modules())
    if name and name in modules:
        return name
    known = [*paper_names, *(path for path in modules if path)]
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    stages = ", ".join(getattr(model, "stage_names", ())) or ", ".join(known[:10])
    raise ValueError(f"{type(model).__name__} has no layer {name!r}; {hint}main stages: {stages}")


def conv_layer_names(model: nn.Module) -> list[str]:
    """Paths of the model's 2-D convolutions, in definition order."""
    return [path for path, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def conv_weights(model: nn.Module, layer: str | None = None) -> tuple[str, Tensor]:
    """(path, kernels (C_out, C_in/groups, K_h, K_w)) of ``layer`` (default: the first convolution)."""
    if layer is None:
        convolutions = conv_layer_names(model)
        if not convolutions:
            raise ValueError(f"{type(model).__name__} has no 2-D convolution")
        path = convolutions[0]
    else:
        path = resolve_layer(model, layer)
    module = model.get_submodule(path)
    if not isinstance(module, nn.Conv2d):
        raise ValueError(f"{path} is a {type(module).__name__}, not a convolution; convolutions: {', '.join(conv_layer_names(model)[:12])}")
    return path, module.weight.detach().float().contiguous()


def feature_maps(model: nn.Module, x: Tensor, layer: str) -> tuple[str, Tensor]:
    """(path, responses (C, h, w)) of ``layer`` for one image ``x`` (1, C, H, W), model in evaluation mode."""
    path = resolve_layer(model, layer)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image (1, C, H, W), got {tuple(x.shape)}")
    with torch.no_grad():
        output = extract_features(model.eval(), x, [path])[path]
    if not isinstance(output, Tensor) or output.dim() != 4:
        raise ValueError(f"layer {path} does not give a (N, C, h, w) feature map")
    return path, output[0].float().contiguous()
