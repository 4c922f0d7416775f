"""Where in the image a class decision comes from: occlusion sensitivity, Grad-CAM and
gradient saliency. Each takes a model and one normalised input ``x`` (1, C, H, W); ``target`` is
a class index and defaults to the model's prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.explain.layers import resolve_layer


def _predicted(model: nn.Module, x: Tensor, target: int | None) -> tuple[int, Tensor]:
    with torch.no_grad():
        probabilities = model.eval()(x).softmax(1)[0]  # (classes,)
    if target is None:
        target = int(probabilities.argmax())
    if not 0 <= target < probabilities.numel():
        raise ValueError(f"class {target} is out of range: the model has {probabilities.numel()} classes")
    return target, probabilities


@dataclass
class OcclusionMap:
    """Class probability with a grey square over each position (Zeiler & Fergus §4.2)."""

    probability: Tensor  # (rows, cols): p(target) with the square centred on each grid position
    baseline: float  # p(target) without occlusion
    target: int
    size: int
    stride: int

    @property
    def drop(self) -> Tensor:
        """baseline − probability: how much covering each place costs the class."""
        return self.baseline - self.probability


def occlusion_map(
    model: nn.Module, x: Tensor, target: int | None = None, size: int | None = None, stride: int | None = None,
    fill: float | Tensor = 0.0, batch_size: int = 64,
) -> OcclusionMap:
    """Slide a ``size``×``size`` square filled with ``fill`` over ``x`` with ``stride`` and record
    the softmax probability of ``target`` for each position.

    The square's top-left corners are 0, s, 2s, … up to H − size, so the map is
    (⌊(H − size)/s⌋ + 1, ⌊(W − size)/s⌋ + 1). ``fill`` is a number or a (C, 1, 1) tensor in the
    input's (normalised) units; ``fill=0`` in a normalised input is the training set's mean
    colour, the "grey square" of the paper. ``size`` defaults to a quarter and ``stride`` to an
    eighth of the shorter side. Occluded copies run in batches of ``batch_size``.
    """
    _, _, h, w = x.shape
    size = size or max(1, min(h, w) // 4)
    stride = stride or max(1, min(h, w) // 8)
    if not (1 <= size <= min(h, w)) or stride < 1:
        raise ValueError(f"occluder size must be 1…{min(h, w)} and stride positive, got size {size}, stride {stride}")
    target, probabilities = _predicted(model, x, target)
    tops, lefts = range(0, h - size + 1, stride), range(0, w - size + 1, stride)
    corners = [(top, left) for top in tops for left in lefts]
    scores = []
    with torch.no_grad():
        for start in range(0, len(corners), batch_size):
            batch = x.repeat(len(corners[start:start + batch_size]), 1, 1, 1)  # (B, C, H, W)
            for i, (top, left) in enumerate(corners[start:start + batch_size]):
                batch[i, :, top:top + size, left:left + size] = fill
            scores.append(model(batch).softmax(1)[:, target])
    probability = torch.cat(scores).view(len(tops), len(lefts))
    return OcclusionMap(probability, float(probabilities[target]), target, size, stride)


@dataclass
class ClassMap:
    """A heat map over the input (H, W) in [0, 1] for class ``target``, and the coarse map it came from."""

    heatmap: Tensor  # (H, W), upsampled to the input size
    coarse: Tensor  # (h, w) at the layer's resolution (Grad-CAM) or (H, W) (saliency)
    target: int
    probability: float
    layer: str | None


def grad_cam(model: nn.Module, x: Tensor, layer: str | None = None, target: int | None = None) -> ClassMap:
    """Grad-CAM (Selvaraju et al. 2017, eq. 1-2) at ``layer`` (default: the model's last stage).

    With A^k the layer's feature maps and y^c the class score before softmax:
    α_k = mean over (i, j) of ∂y^c/∂A^k_ij, L = ReLU(Σ_k α_k A^k), upsampled bilinearly to the
    input size and divided by its maximum (all zero when nothing speaks for the class).
    """
    if layer is None:
        stages = getattr(model, "stage_names", ())
        if not stages:
            raise ValueError(f"{type(model).__name__} names no stages; pass the layer to use")
        layer = stages[-1]
    path = resolve_layer(model, layer)
    target, probabilities = _predicted(model, x, target)
    captured = {}

    def keep(module, inputs, output):
        captured["maps"] = output

    handle = model.get_submodule(path).register_forward_hook(keep)
    try:
        scores = model.eval()(x)  # (1, classes)
    finally:
        handle.remove()
    maps = captured.get("maps")
    if not isinstance(maps, Tensor) or maps.dim() != 4:
        raise ValueError(f"layer {path} does not give a (N, C, h, w) feature map")
    (gradients,) = torch.autograd.grad(scores[0, target], maps)  # (1, C, h, w)
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1): α_k
    coarse = F.relu((weights * maps.detach()).sum(1))[0]  # (h, w)
    heatmap = F.interpolate(coarse[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    heatmap = heatmap / heatmap.max() if heatmap.max() > 0 else heatmap
    return ClassMap(heatmap.clamp(0, 1), coarse, target, float(probabilities[target]), path)


def saliency_map(model: nn.Module, x: Tensor, target: int | None = None) -> ClassMap:
    """Gradient saliency (Simonyan, Vedaldi & Zisserman 2014, §3.1): M_ij = max_c |∂y^target/∂x_cij|,
    divided by its maximum."""
    target, probabilities = _predicted(model, x, target)
    x = x.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model.eval()(x)[0, target], x)  # (1, C, H, W)
    coarse = gradient[0].abs().amax(0)  # (H, W)
    heatmap = coarse / coarse.max() if coarse.max() > 0 else coarse
    return ClassMap(heatmap, coarse, target, float(probabilities[target]), None)
