"""Pooling over rectangular neighbourhoods: max, average and Lp (L2) norm, 1-3 dimensions.

A window of size K slides with stride s over the input padded by p; each output summarises
the values under the window, channel by channel:

- max:      out = max_{m ∈ window} x(s·i + m)
- average:  out = (1/|window|) Σ_{m ∈ window} x(s·i + m)
- Lp norm:  out = (Σ_{m ∈ window} |x(s·i + m)|^p)^(1/p)        (p = 2: L2 pooling)

Output length per direction is :func:`cnnkit.ops.shapes.output_size`. Inputs are ``(N, C, *S)``
with 1-3 spatial directions; window, stride and padding are an int or a tuple per direction.
As in PyTorch, padding may be at most half the window, so no window lies wholly in the padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnkit.ops.shapes import output_size

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _window(x: torch.Tensor, size, stride, padding, ceil_mode: bool = False):
    dims = x.dim() - 2
    if dims not in _MAX_POOL:
        raise ValueError(f"input must have shape (N, C, *S) with 1-3 spatial dims, got {tuple(x.shape)}")

    def per_direction(name, value, minimum):
        values = (value,) * dims if isinstance(value, int) else tuple(value)
        if len(values) != dims or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
            kind = "positive" if minimum else "non-negative"
            raise ValueError(f"{name} must be a {kind} int or a tuple of {dims}, got {value!r}")
        return values

    size = per_direction("size", size, 1)
    stride = size if stride is None else per_direction("stride", stride, 1)
    padding = per_direction("padding", padding, 0)
    for n, k, s, p in zip(x.shape[2:], size, stride, padding):
        if 2 * p > k:
            raise ValueError(f"padding {p} is more than half the window {k}: some windows would hold only padding")
        output_size(n, k, s, p, ceil_mode=ceil_mode)  # a clear error for a window larger than the input
    return dims, size, stride, padding


def max_pool(
    x: torch.Tensor,
    size: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    padding: int | tuple[int, ...] = 0,
    ceil_mode: bool = False,
    return_switches: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Max pooling: out(i) = max over the window at s·i of x; padding counts as −∞.

    ``stride`` defaults to the window size (non-overlapping windows). With ``return_switches``
    it also returns the *switches* of Zeiler & Fergus: for every output, the flat index into its
    channel's (unpadded) input plane of the maximum, which :func:`max_unpool` uses to put values
    back where they came from.
    """
    dims, size, stride, padding = _window(x, size, stride, padding, ceil_mode)
    return _MAX_POOL[dims](x, size, stride, padding, 1, ceil_mode, return_switches)


def max_unpool(y: torch.Tensor, switches: torch.Tensor, input_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Unpooling with switches: the inverse of :func:`max_pool` in the deconvnet sense.

    Each value of ``y`` is put back at the input position its switch recorded; every other
    position is zero. Overlapping windows (3×3 pooling with stride 2) can share a maximum: their
    values are summed there, which makes unpooling the exact transpose (the gradient) of max
    pooling. ``input_shape`` is the shape of the tensor that was pooled.
    """
    dims = y.dim() - 2
    if not 1 <= dims <= 3 or switches.shape != y.shape:
        raise ValueError(f"y {tuple(y.shape)} and switches {tuple(switches.shape)} must have the same (N, C, *S) shape")
    spatial = tuple(input_shape[-dims:])
    plane = torch.zeros(*y.shape[:2], math.prod(spatial), dtype=y.dtype, device=y.device)  # (N, C, H·W)
    return plane.scatter_add(2, switches.flatten(2), y.flatten(2)).view(*y.shape[:2], *spatial)


def avg_pool(
    x: torch.Tensor,
    size: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    padding: int | tuple[int, ...] = 0,
    ceil_mode: bool = False,
    count_padding: bool = False,
) -> torch.Tensor:
    """Average pooling: out(i) = (1/|window|) Σ x over the window at s·i.

    By default the padding does not count: a window at the border is the mean of the real
    values it covers. ``count_padding=True`` divides by the full window size instead, as
    ``torch.nn.AvgPool2d`` does by default.
    """
    dims, size, stride, padding = _window(x, size, stride, padding, ceil_mode)
    return _AVG_POOL[dims](x, size, stride, padding, ceil_mode, count_padding)


def lp_pool(
    x: torch.Tensor,
    size: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    padding: int | tuple[int, ...] = 0,
    p: float = 2.0,
) -> torch.Tensor:
    """Lp norm pooling: out(i) = (Σ_{window at s·i} |x|^p)^(1/p); p = 2 is L2 pooling.

    Padding adds zeros, which do not change the sum. Where a whole window is zero the output is
    zero and so is its gradient (``torch.nn.functional.lp_pool2d`` returns NaN gradients there).
    ``p = inf`` is max pooling of |x|.
    """
    if not p > 0:
        raise ValueError(f"p must be positive, got {p!r}")
    if p == float("inf"):
        return max_pool(x.abs(), size, stride, padding)
    dims, size, stride, padding = _window(x, size, stride, padding)
    power_sum = _AVG_POOL[dims](x.abs() ** p, size, stride, padding, False, True) * math.prod(size)
    positive = power_sum > 0
    safe = torch.where(positive, power_sum, torch.ones_like(power_sum))
    return torch.where(positive, safe ** (1.0 / p), torch.zeros_like(power_sum))


def l2_pool(
    x: torch.Tensor,
    size: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    padding: int | tuple[int, ...] = 0,
) -> torch.Tensor:
    """L2 norm pooling: out(i) = sqrt(Σ_{window at s·i} x²). See :func:`lp_pool`."""
    return lp_pool(x, size, stride, padding, 2.0)
