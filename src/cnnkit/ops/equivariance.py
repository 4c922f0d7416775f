"""Translation equivariance of convolutions and the approximate invariance pooling adds.

A map f is translation *equivariant* when shifting the input shifts the output the same way,
f(T_t x) = T_{t/S} f(x) for a layer of total stride S; it is *invariant* when the output does
not move at all, f(T_t x) = f(x). Convolutions are equivariant away from the borders; pooling
makes small shifts (less than its window) approximately invisible.

Both measures here shift with ``torch.roll`` (the image wraps around), then compare only the
interior, ``margin`` pixels away from every output border, where wrapped-in pixels and padding
cannot reach. Results are relative errors ‖a − b‖ / ‖b‖ over that interior.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Layer = Callable[[torch.Tensor], torch.Tensor]


def _interior(y: torch.Tensor, margin: int) -> torch.Tensor:
    if margin == 0:
        return y
    if any(2 * margin >= n for n in y.shape[2:]):
        raise ValueError(f"margin {margin} leaves no interior in an output of size {tuple(y.shape[2:])}")
    return y[(..., *(slice(margin, -margin) for _ in y.shape[2:]))]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-12))


def shift(x: torch.Tensor, offsets: tuple[int, ...]) -> torch.Tensor:
    """Translate the spatial directions of ``x`` (N, C, *S) by ``offsets`` pixels (cyclically)."""
    return torch.roll(x, shifts=tuple(offsets), dims=tuple(range(2, 2 + len(offsets))))


def equivariance_error(f: Layer, x: torch.Tensor, offsets: tuple[int, ...], margin: int = 0) -> float:
    """‖f(shift(x, t)) − shift(f(x), t/S)‖ / ‖f(x)‖ over the interior of the output.

    S, the total stride of ``f``, is read off the sizes of input and output; each offset must be
    a multiple of it (a strided layer is only equivariant to shifts by whole output pixels).
    """
    with torch.no_grad():
        y = f(x)
        strides = [round(n_in / n_out) for n_in, n_out in zip(x.shape[2:], y.shape[2:])]
        if any(t % s for t, s in zip(offsets, strides)):
            raise ValueError(f"offsets {tuple(offsets)} must be multiples of the layer's stride {tuple(strides)}")
        expected = shift(y, tuple(t // s for t, s in zip(offsets, strides)))
        return _relative(_interior(f(shift(x, offsets)), margin), _interior(expected, margin))


def invariance_error(f: Layer, x: torch.Tensor, offsets: tuple[int, ...], margin: int = 0) -> float:
    """‖f(shift(x, t)) − f(x)‖ / ‖f(x)‖ over the interior: 0 means f did not see the shift."""
    with torch.no_grad():
        y = f(x)
        return _relative(_interior(f(shift(x, offsets)), margin), _interior(y, margin))
