"""Convolution and cross-correlation in 1, 2 and 3 dimensions.

The lecture defines the (discrete) **convolution** of an input x with a kernel k as

    g(i, j) = Σ_α Σ_β x(α, β) · k(i − α, j − β)

that is, the kernel is *flipped* before it slides over the input. Deep-learning layers
(``torch.nn.Conv2d`` and friends) compute the **cross-correlation**

    g(i, j) = Σ_α Σ_β x(i + α, j + β) · k(α, β)

with the kernel as it is. Both are offered here under those names; for a learned kernel the
difference is only a relabelling of the weights, for a hand-made one (Sobel, emboss) it is not.

Shapes follow ``torch.nn.functional.conv*d``: input ``(N, C_in, *S)``, kernel
``(C_out, C_in / groups, *K)``, output ``(N, C_out, *S_out)`` with ``len(S) == len(K)`` ∈ {1, 2, 3}.
Every output length is :func:`cnnkit.ops.shapes.output_size`. Both functions are differentiable
with respect to input and kernel; they run on whatever device the tensors are on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.ops.padding import PADDING_MODES, Padding, pad, resolve_padding
from cnnkit.ops.shapes import output_size

_CONVOLUTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _per_direction(name: str, value: int | tuple[int, ...], dims: int) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(values) != dims or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be a positive int or a tuple of {dims} positive ints, got {value!r}")
    return values


def _check_shapes(x: torch.Tensor, kernel: torch.Tensor, groups: int) -> int:
    dims = kernel.dim() - 2
    if dims not in _CONVOLUTIONS:
        raise ValueError(
            f"kernel must have shape (C_out, C_in/groups, *K) with 1-3 spatial dims, got {tuple(kernel.shape)}"
        )
    if x.dim() != dims + 2:
        raise ValueError(
            f"input must have shape (N, C_in, *S) with {dims} spatial dims to match the kernel "
            f"{tuple(kernel.shape)}, got {tuple(x.shape)}"
        )
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    channels_in, channels_out = x.shape[1], kernel.shape[0]
    if channels_in % groups or channels_out % groups:
        raise ValueError(
            f"groups={groups} must divide both input channels ({channels_in}) and output channels ({channels_out})"
        )
    if kernel.shape[1] * groups != channels_in:
        raise ValueError(
            f"kernel expects {kernel.shape[1]} × groups {groups} = {kernel.shape[1] * groups} input channels, "
            f"the input has {channels_in}"
        )
    return dims


def cross_correlation(
    x: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Cross-correlation, what a deep-learning convolution layer computes.

    out(n, c_out, i) = bias(c_out) + Σ_{c_in in the group} Σ_m x_pad(n, c_in, s·i + d·m) · k(c_out, c_in, m)

    for every spatial multi-index ``i`` and kernel offset ``m``, where ``x_pad`` is the input padded
    as asked. Output length per direction: ⌊(n + p_before + p_after − d(K−1) − 1)/s⌋ + 1.

    Args:
        x: ``(N, C_in, *S)`` input.
        kernel: ``(C_out, C_in / groups, *K)`` weights.
        bias: optional ``(C_out,)``.
        stride, dilation: an int for every direction or a tuple with one per direction.
        padding: an int (every side), a tuple with one int per direction (both sides), a tuple
            of ``(before, after)`` pairs, or ``"valid"`` (none), ``"same"`` (output ⌈n/s⌉ long)
            or ``"full"`` (d(K−1) on each side: every overlap of kernel and input).
        groups: splits channels into independent groups (``groups == C_in`` is depthwise).
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Raises:
        ValueError: mismatched shapes or channels, groups that do not divide the channels,
            non-positive stride or dilation, an unknown padding mode, or a kernel larger than
            the padded input.
    """
    dims = _check_shapes(x, kernel, groups)
    stride = _per_direction("stride", stride, dims)
    dilation = _per_direction("dilation", dilation, dims)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    sizes, kernel_size = tuple(x.shape[2:]), tuple(kernel.shape[2:])
    pairs = resolve_padding(padding, sizes, kernel_size, stride, dilation)
    for n, k, s, d, p in zip(sizes, kernel_size, stride, dilation, pairs):
        output_size(n, k, s, p, d)  # raises a clear error for a kernel larger than the padded input
    symmetric = all(before == after for before, after in pairs)
    if padding_mode == "zeros" and symmetric:  # let the convolution kernel pad: no copy of x
        return _CONVOLUTIONS[dims](x, kernel, bias, stride, tuple(b for b, _ in pairs), dilation, groups)
    x = pad(x, pairs, padding_mode)
    return _CONVOLUTIONS[dims](x, kernel, bias, stride, 0, dilation, groups)


def convolution(
    x: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Convolution as the lecture defines it: the kernel flipped in every spatial direction.

    g(i) = Σ_α x(α) · k(i − α), computed as the cross-correlation of ``x`` with the kernel
    reversed along each spatial axis: k'(m) = k(K − 1 − m). With ``padding="full"`` and stride 1
    this is ``scipy.signal.convolve(x, k, mode="full")`` for every channel pair.

    ``"same"`` padding puts the odd extra zero *before* the input (mirroring
    :func:`cross_correlation`, since the kernel is mirrored), so that for even kernels the result
    is ``scipy.signal.convolve(..., mode="same")`` too. Arguments, shapes and errors are those of
    :func:`cross_correlation`.
    """
    spatial_axes = tuple(range(2, kernel.dim()))
    if padding == "same":
        dims = _check_shapes(x, kernel, groups)
        stride_d, dilation_d = _per_direction("stride", stride, dims), _per_direction("dilation", dilation, dims)
        pairs = resolve_padding("same", x.shape[2:], kernel.shape[2:], stride_d, dilation_d)
        padding = tuple((after, before) for before, after in pairs)
    return cross_correlation(
        x, torch.flip(kernel, spatial_axes), bias, stride, padding, dilation, groups, padding_mode
    )
