"""The deconvnet of Zeiler & Fergus (2014, "Visualizing and understanding convolutional
networks", §2.1): project one activation back to pixel space.

All other activations of the layer are set to zero and the signal goes down through every layer
below, each one undone in reverse order:

- max pooling → *unpooling*: each value goes back to the position its *switch* recorded in the
  forward pass (the maximum of its window); every other position is zero;
- ReLU → *rectification*: the backward signal itself goes through a ReLU, r = max(0, s),
  whatever the sign of the forward input was;
- convolution → *filtering* with the transposed filters (``conv_transpose2d`` with the same
  weights, no bias): each filter flipped and its input and output channels swapped.

Plain gradient backpropagation differs only at the ReLUs: the gradient passes s where the forward
input was positive (s · [x > 0]), the deconvnet passes max(0, s). Unpooling is exactly max
pooling's gradient and filtering is exactly the convolution's gradient with respect to its input.

:func:`project_chain` is the paper's procedure written out for a chain of layers (VGG's and
AlexNet's ``features``), with :func:`cnnkit.ops.max_pool`'s switches and :func:`cnnkit.ops.max_unpool`. :func:`deconvnet` does the same for any model whose
rectifications are ``nn.ReLU`` modules, by running autograd with the ReLU's backward rule
replaced, so residual networks work too; the tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.explain.layers import feature_maps, resolve_layer
from cnnkit.ops import max_pool, max_unpool


@dataclass
class Projection:
    """One activation projected to pixel space: ``image`` (C, H, W) in the input's units."""

    image: Tensor
    layer: str
    channel: int
    position: tuple[int, int]  # (row, column) in the layer's feature map
    activation: float


def top_signal(feature_map: Tensor, channel: int | None, position: tuple[int, int] | None) -> tuple[Tensor, int, tuple[int, int]]:
    """Zero everywhere except one activation of (1, C, h, w): ``channel`` (default: the one with the
    largest activation) at ``position`` (default: that channel's maximum). Returns (signal, channel, position)."""
    if feature_map.dim() != 4 or feature_map.shape[0] != 1:
        raise ValueError(f"expected the feature map of one image (1, C, h, w), got {tuple(feature_map.shape)}")
    _, channels, h, w = feature_map.shape
    if channel is None:
        channel = int(feature_map[0].flatten(1).amax(1).argmax())
    if not 0 <= channel < channels:
        raise ValueError(f"channel {channel} is out of range: the layer has {channels} channels")
    if position is None:
        flat = int(feature_map[0, channel].argmax())
        position = (flat // w, flat % w)
    row, column = position
    if not (0 <= row < h and 0 <= column < w):
        raise ValueError(f"position {position} is outside the {h}×{w} feature map")
    signal = torch.zeros_like(feature_map)
    signal[0, channel, row, column] = feature_map[0, channel, row, column]
    return signal, channel, (row, column)


def project_chain(
    layers: Sequence[nn.Module], x: Tensor, channel: int | None = None, position: tuple[int, int] | None = None
) -> Projection:
    """Project an activation of the last of ``layers`` (a chain ending at the layer to examine) for
    the image ``x`` (1, C, H, W), as Zeiler & Fergus do.

    Layers may be ``nn.Conv2d``, ``nn.ReLU``, ``nn.MaxPool2d`` and ``nn.Dropout`` (identity in
    evaluation); anything else raises ``ValueError``. ``channel`` and ``position`` default to the
    strongest activation (see :func:`top_signal`).
    """
    records = []  # per layer: what its undoing needs
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.Conv2d):
                records.append(("filter", (layer, x.shape[-2:])))
                x = layer(x)
            elif isinstance(layer, nn.ReLU):
                records.append(("rectify", None))
                x = F.relu(x)
            elif isinstance(layer, nn.MaxPool2d):
                shape = x.shape
                x, switches = max_pool(x, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, return_switches=True)
                records.append(("unpool", (switches, shape)))
            elif isinstance(layer, nn.Dropout):
                records.append(("identity", None))
            else:
                raise ValueError(f"project_chain handles Conv2d, ReLU, MaxPool2d and Dropout, not {type(layer).__name__}")
        signal, channel, position = top_signal(x, channel, position)
        activation = float(x[0, channel, position[0], position[1]])
        for kind, record in reversed(records):
            if kind == "rectify":
                signal = F.relu(signal)  # (N, C, h, w): only positive signals pass
            elif kind == "unpool":
                switches, shape = record
                signal = max_unpool(signal, switches, shape)  # (N, C, H, W): values back at their switches
            elif kind == "filter":
                signal = transposed_filtering(signal, *record)  # (N, C_in, H, W)
    return Projection(signal[0], f"layer {len(layers) - 1}", channel, position, activation)


def transposed_filtering(signal: Tensor, conv: nn.Conv2d, input_size: tuple[int, int] | None = None) -> Tensor:
    """The convolution's transpose applied to ``signal`` (N, C_out, h, w) → (N, C_in, H, W): the
    same weights, flipped and with input and output channels swapped, no bias.

    With stride s > 1 several input sizes give the same output size; ``input_size`` (H, W) picks
    the one the forward pass had (default: the smallest, (h − 1)s − 2p + d(K − 1) + 1).
    """
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("transposed filtering supports numeric zero padding only")
    extra = [0, 0]
    if input_size is not None:
        for i in range(2):
            smallest = (signal.shape[2 + i] - 1) * conv.stride[i] - 2 * conv.padding[i] + conv.dilation[i] * (conv.kernel_size[i] - 1) + 1
            extra[i] = int(input_size[i]) - smallest
    return F.conv_transpose2d(signal, conv.weight, None, conv.stride, conv.padding, tuple(extra), conv.groups, conv.dilation)


class _RectifiedBackward(torch.autograd.Function):
    """y = max(0, x) forward; backward passes max(0, s), the deconvnet's rectification."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return F.relu(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.clamp(min=0)


class _Captured(Exception):
    pass


def deconvnet(
    model: nn.Module, x: Tensor, layer: str, channel: int | None = None, position: tuple[int, int] | None = None
) -> Projection:
    """Project an activation of ``layer`` (a submodule path) for the image ``x`` (1, C, H, W) with
    the deconvnet's rules on any model whose rectifications are ``nn.ReLU`` modules.

    Autograd already unpools with the switches (max pooling's gradient) and filters with the
    transposed weights (convolution's gradient); only each ReLU's backward is replaced by
    rectification of the signal. Batch normalisation in evaluation mode is a per-channel affine
    map, which the signal goes back through as its transpose. Raises ``ValueError`` for an
    unknown layer or a model without ``nn.ReLU`` modules.
    """
    layer = resolve_layer(model, layer)
    target = model.get_submodule(layer)
    relus = [module for module in model.modules() if isinstance(module, nn.ReLU)]
    if not relus:
        raise ValueError(f"{type(model).__name__} has no nn.ReLU modules, so the deconvnet's rectification cannot be applied")
    captured = {}

    def capture(module, inputs, output):
        captured["output"] = output
        raise _Captured

    def rectify(module, inputs, output):
        return _RectifiedBackward.apply(inputs[0])

    was_training, inplace = model.training, [relu.inplace for relu in relus]
    handles = [relu.register_forward_hook(rectify) for relu in relus]
    handles.append(target.register_forward_hook(capture))
    x = x.detach().clone().requires_grad_(True)
    try:
        model.eval()
        for relu in relus:
            relu.inplace = False  # the pre-activation must survive for the replacement to start from it
        try:
            model(x)
        except _Captured:
            pass
        if "output" not in captured:
            raise ValueError(f"{type(model).__name__}: layer {layer} did not run in the forward pass")
        output = captured["output"]
        signal, channel, position = top_signal(output.detach(), channel, position)
        (grad,) = torch.autograd.grad(output, x, signal)
    finally:
        for handle in handles:
            handle.remove()
        for relu, flag in zip(relus, inplace):
            relu.inplace = flag
        model.train(was_training)
    activation = float(output.detach()[0, channel, position[0], position[1]])
    return Projection(grad[0], layer, channel, position, activation)


def strongest_activations(model: nn.Module, x: Tensor, layer: str, count: int) -> list[tuple[int, tuple[int, int], float]]:
    """The ``count`` channels of ``layer`` with the largest activation for ``x`` (1, C, H, W), each
    as (channel, (row, column) of its maximum, value), strongest first."""
    _, feature_map = feature_maps(model, x, layer)  # (C, h, w)
    peaks, flat = feature_map.flatten(1).max(1)
    order = peaks.argsort(descending=True)[:count]
    w = feature_map.shape[-1]
    return [(int(c), (int(flat[c]) // w, int(flat[c]) % w), float(peaks[c])) for c in order]
