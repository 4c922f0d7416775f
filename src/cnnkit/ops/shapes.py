"""Shape arithmetic of convolution and pooling: output sizes, "same" padding, receptive fields.

All functions work on one spatial direction at a time; call them once per direction for
rectangular inputs. They are the formulas of the lecture, and the operations in
:mod:`cnnkit.ops` are tested to return exactly these sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Padding1d = int | tuple[int, int] | str


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def same_padding(n: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """Padding ``(before, after)`` that makes the output ``ceil(n / s)`` long ("same").

    total = max((ceil(n/s) - 1)·s + d(K-1) + 1 - n, 0); before = ⌊total/2⌋, after = the rest.
    With stride 1 the output has the input's size and total = d(K-1). An odd total puts the
    extra zero after the input, as PyTorch and TensorFlow do.
    """
    n, kernel = _positive("input size", n), _positive("kernel", kernel)
    stride, dilation = _positive("stride", stride), _positive("dilation", dilation)
    total = max((math.ceil(n / stride) - 1) * stride + dilation * (kernel - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def resolve_padding(padding: Padding1d, n: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """Turn a padding specification into ``(before, after)`` for one direction.

    ``"valid"`` → (0, 0); ``"same"`` → :func:`same_padding`; ``"full"`` → (d(K-1), d(K-1)), every
    position where kernel and input overlap at all; an int p → (p, p); a pair is taken as is.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            return same_padding(n, kernel, stride, dilation)
        if padding == "full":
            return (dilation * (kernel - 1),) * 2
        raise ValueError(f"padding must be an int, a pair, 'valid', 'same' or 'full', got {padding!r}")
    pair = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in pair):
        raise ValueError(f"padding must be a non-negative int or a (before, after) pair, got {padding!r}")
    return pair


def output_size(
    n: int,
    kernel: int,
    stride: int = 1,
    padding: Padding1d = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a convolution or pooling window sliding over ``n`` inputs.

    out = ⌊(n + p_before + p_after - d(K-1) - 1) / s⌋ + 1, which is the lecture's
    ⌊(n + 2p - d(K-1) - 1)/s⌋ + 1 for symmetric padding. ``ceil_mode`` rounds up instead, as
    pooling layers may, but a last window must still start inside the input or left padding.

    Raises ``ValueError`` when the (dilated) kernel is larger than the padded input.
    """
    n, kernel = _positive("input size", n), _positive("kernel", kernel)
    stride, dilation = _positive("stride", stride), _positive("dilation", dilation)
    before, after = resolve_padding(padding, n, kernel, stride, dilation)
    span = dilation * (kernel - 1) + 1
    padded = n + before + after
    if span > padded:
        raise ValueError(
            f"kernel {kernel} (dilation {dilation}, span {span}) is larger than the padded input "
            f"{padded} (size {n} + padding {before}+{after})"
        )
    if not ceil_mode:
        return (padded - span) // stride + 1
    out = -(-(padded - span) // stride) + 1
    if (out - 1) * stride >= n + before:  # the last window would start in the right padding
        out -= 1
    return out


@dataclass(frozen=True)
class Layer:
    """One convolution or pooling layer along one direction: kernel K, stride s, padding p, dilation d."""

    kernel: int
    stride: int = 1
    padding: Padding1d = 0
    dilation: int = 1
    ceil_mode: bool = False
    name: str = ""


@dataclass(frozen=True)
class FieldStep:
    """What one layer's output looks like along one direction.

    ``size`` is the output length (None when no input size was given), ``jump`` the distance in
    input pixels between neighbouring outputs, ``receptive_field`` how many input pixels one output
    sees, and ``start`` the input coordinate of the centre of the first output's field.
    """

    layer: Layer
    size: int | None
    jump: int
    receptive_field: int
    start: float


def receptive_field(layers: Sequence[Layer], input_size: int | None = None) -> list[FieldStep]:
    """Receptive field, jump and start of every layer of a stack, one direction.

    With the input as layer 0 (r = 1, j = 1, start = 0.5 pixel centres at 0.5, 1.5, …), each layer
    of kernel K, stride s, left padding p and dilation d gives

        j_out = j_in · s
        r_out = r_in + d(K-1) · j_in
        start_out = start_in + ((d(K-1))/2 - p) · j_in

    When ``input_size`` is given the output sizes are computed too, and an impossible layer (a
    kernel larger than its padded input) raises ``ValueError`` naming the layer.
    """
    steps: list[FieldStep] = []
    size, jump, field, start = input_size, 1, 1, 0.5
    for index, layer in enumerate(layers, start=1):
        label = layer.name or f"layer {index}"
        _positive(f"{label}: kernel", layer.kernel)
        _positive(f"{label}: stride", layer.stride)
        _positive(f"{label}: dilation", layer.dilation)
        if size is not None:
            try:
                before, _ = resolve_padding(layer.padding, size, layer.kernel, layer.stride, layer.dilation)
                size = output_size(size, layer.kernel, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
            except ValueError as error:
                raise ValueError(f"{label}: {error}") from None
        elif isinstance(layer.padding, str) and layer.padding == "same":
            raise ValueError(f"{label}: 'same' padding needs an input size")
        else:
            before, _ = resolve_padding(layer.padding, 1, layer.kernel, layer.stride, layer.dilation)
        span = layer.dilation * (layer.kernel - 1)
        start = start + (span / 2 - before) * jump
        field = field + span * jump
        jump = jump * layer.stride
        steps.append(FieldStep(layer, size, jump, field, start))
    return steps
