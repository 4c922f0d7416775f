"""Padding of 1-3 dimensional inputs: zeros, reflect, replicate, circular.

A padding specification is resolved to one ``(before, after)`` pair per spatial direction by
:func:`resolve_padding`; :func:`pad` then extends the input on every side.

- zeros:     … 0 0 | a b c d | 0 0 …
- reflect:   … c b | a b c d | c b …   (mirror about the edge sample, which is not repeated)
- replicate: … a a | a b c d | d d …
- circular:  … c d | a b c d | a b …   (the signal taken as periodic)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cnnkit.ops import shapes

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

Padding = int | str | tuple[int, ...] | tuple[tuple[int, int], ...]


def resolve_padding(
    padding: Padding,
    sizes: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """One ``(before, after)`` pair per spatial direction.

    ``padding`` is an int (every side), a string (``"valid"``, ``"same"``, ``"full"``, applied in
    every direction, see :func:`cnnkit.ops.shapes.resolve_padding`), a tuple of one int per
    direction (both sides), or a tuple of one ``(before, after)`` pair per direction.
    """
    dims = len(sizes)
    if isinstance(padding, (int, str)) and not isinstance(padding, bool):
        per_direction = (padding,) * dims
    elif isinstance(padding, (tuple, list)) and len(padding) == dims:
        per_direction = tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in padding)
    else:
        raise ValueError(
            f"padding must be an int, 'valid', 'same', 'full', or a tuple of {dims} ints or "
            f"(before, after) pairs, got {padding!r}"
        )
    return tuple(
        shapes.resolve_padding(p, n, k, s, d)
        for p, n, k, s, d in zip(per_direction, sizes, kernel_size, stride, dilation)
    )


def pad(x: torch.Tensor, pairs: Sequence[tuple[int, int]], mode: str = "zeros") -> torch.Tensor:
    """Pad the spatial directions of ``x`` (N, C, *S) by ``pairs[i] = (before, after)`` for S[i].

    Raises ``ValueError`` for an unknown mode, or for reflect padding as wide as the input
    (reflection needs padding < size, since the edge sample is not repeated).
    """
    if mode not in PADDING_MODES:
        raise ValueError(f"padding mode must be one of {', '.join(PADDING_MODES)}, got {mode!r}")
    if not any(before or after for before, after in pairs):
        return x
    for axis, (n, (before, after)) in enumerate(zip(x.shape[2:], pairs)):
        if mode == "reflect" and max(before, after) >= n:
            raise ValueError(f"reflect padding {before}+{after} needs an input longer than that; direction {axis} has {n}")
        if mode == "circular" and max(before, after) > n:
            raise ValueError(f"circular padding {before}+{after} can wrap at most once; direction {axis} has {n}")
    flat = [amount for pair in reversed(pairs) for amount in pair]  # F.pad lists the last axis first
    return F.pad(x, flat, mode="constant" if mode == "zeros" else mode)
