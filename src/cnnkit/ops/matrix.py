"""The convolution written as a matrix, and what that matrix says about convolution layers.

A 2-D cross-correlation of a ``(C_in, H, W)`` input is linear, so it is a matrix ``A`` of shape
``(C_out·H_out·W_out, C_in·H·W)`` acting on the flattened input: ``vec(y) = A · vec(x)``. Row
``(o, i, j)`` holds the kernel ``k(o, ·, ·, ·)`` placed at the input window of output ``(i, j)``:

    A[(o, i, j), (c, s·i + d·u − p, s·j + d·v − p)] = k(o, c, u, v)

Most entries are zero (**sparse connectivity**: an output sees only K_h·K_w·C_in inputs) and the
non-zeros repeat the same C_out·C_in·K_h·K_w numbers everywhere (**parameter sharing**).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from cnnkit.ops.padding import PADDING_MODES, Padding, resolve_padding
from cnnkit.ops.shapes import output_size


def _geometry(kernel_size, input_size, stride, padding, dilation):
    """Stride, dilation, padding pairs and output size (H_out, W_out) of a 2-D sliding window."""
    stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
    dilation = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
    pairs = resolve_padding(padding, input_size, kernel_size, stride, dilation)
    out = tuple(output_size(*args) for args in zip(input_size, kernel_size, stride, pairs, dilation))
    return stride, dilation, pairs, out


def _window_positions(n_out: int, kernel: int, stride: int, dilation: int, before: int) -> torch.Tensor:
    """Padded coordinate s·i + d·u − p_before seen by output i through kernel tap u: (n_out, K)."""
    return stride * torch.arange(n_out)[:, None] + dilation * torch.arange(kernel)[None, :] - before


def _source_index(position: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map padded coordinates (−p … n+p−1) to input coordinates; −1 marks a zero pad."""
    if mode == "zeros":
        return torch.where((position >= 0) & (position < n), position, torch.full_like(position, -1))
    if mode == "replicate":
        return position.clamp(0, n - 1)
    if mode == "circular":
        return position % n
    period = 2 * (n - 1)  # reflect: … 2 1 | 0 1 2 … n−1 | n−2 …
    folded = position.abs() % period if n > 1 else torch.zeros_like(position)
    return torch.where(folded < n, folded, period - folded)


def convolution_matrix(
    kernel: torch.Tensor,
    input_size: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, int] = 1,
    padding_mode: str = "zeros",
    flip: bool = False,
) -> torch.Tensor:
    """The sparse matrix ``A`` with ``vec(cross_correlation(x, kernel)) = A · vec(x)``.

    ``kernel`` is ``(C_out, C_in, K_h, K_w)`` or a single ``(K_h, K_w)`` filter; ``input_size`` is
    ``(H, W)``. Rows follow the output's ``(C_out, H_out, W_out)`` order and columns the input's
    ``(C_in, H, W)`` order, both flattened row-major. ``flip=True`` builds the matrix of the
    flipped-kernel :func:`cnnkit.ops.convolution` instead. Padding follows the same rules as the
    operations; with reflect, replicate or circular padding one input can appear twice in a
    window, and the matrix entry is the sum of the kernel weights that touch it.

    Returns a coalesced ``torch.sparse_coo_tensor`` of the kernel's dtype.
    """
    if kernel.dim() == 2:
        kernel = kernel[None, None]
    if kernel.dim() != 4:
        raise ValueError(f"kernel must be (K_h, K_w) or (C_out, C_in, K_h, K_w), got {tuple(kernel.shape)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    if flip:
        kernel = torch.flip(kernel, (2, 3))
    c_out, c_in, kh, kw = kernel.shape
    h, w = input_size
    stride, dilation, ((top, _), (left, _)), (h_out, w_out) = _geometry(
        (kh, kw), input_size, stride, padding, dilation
    )

    # Input row touched by output row i and kernel row u: s·i + d·u − top, likewise for columns.
    rows = _source_index(_window_positions(h_out, kh, stride[0], dilation[0], top), h, padding_mode)  # (H_out, K_h)
    cols = _source_index(_window_positions(w_out, kw, stride[1], dilation[1], left), w, padding_mode)  # (W_out, K_w)
    o, c, i, j, u, v = torch.meshgrid(
        *(torch.arange(n) for n in (c_out, c_in, h_out, w_out, kh, kw)), indexing="ij"
    )  # each (C_out, C_in, H_out, W_out, K_h, K_w)
    source_row, source_col = rows[i, u], cols[j, v]
    inside = (source_row >= 0) & (source_col >= 0)
    row_index = (o * h_out + i) * w_out + j
    col_index = (c * h + source_row) * w + source_col
    values = kernel[o, c, u, v]
    indices = torch.stack([row_index[inside], col_index[inside]])
    shape = (c_out * h_out * w_out, c_in * h * w)
    return torch.sparse_coo_tensor(indices, values[inside], shape, check_invariants=True).coalesce()


@dataclass(frozen=True)
class Connectivity:
    """The lecture's "key aspects" of a convolution layer, as numbers.

    - ``dense_connections``: weights a fully connected layer between the same input and output
      would need, (C_out·H_out·W_out)·(C_in·H·W).
    - ``connections``: input-output pairs the convolution actually links (non-zeros of ``A``).
    - ``sparsity``: 1 − connections / dense_connections (sparse connectivity).
    - ``parameters``: distinct weights, C_out·C_in·K_h·K_w (plus nothing per position).
    - ``uses_per_parameter``: connections / parameters — how often each weight is reused
      across positions (parameter sharing).
    """

    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    dense_connections: int
    connections: int
    sparsity: float
    parameters: int
    uses_per_parameter: float

    def to_dict(self) -> dict:
        return asdict(self)


def connectivity(
    kernel: torch.Tensor,
    input_size: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, int] = 1,
) -> Connectivity:
    """Count sparse connectivity and parameter sharing of a 2-D convolution (zero padding).

    connections = C_out · C_in · (Σ_i taps inside the input in row i) · (Σ_j … in column j), the
    non-zeros of :func:`convolution_matrix` for a kernel without zero weights, counted without
    building the matrix (a 64→64 layer at 56×56 has 10⁸ of them).
    """
    shape = tuple(kernel.shape) if kernel.dim() == 4 else (1, 1, *kernel.shape)
    c_out, c_in, kh, kw = shape
    stride, dilation, pairs, (h_out, w_out) = _geometry((kh, kw), input_size, stride, padding, dilation)
    taps_inside = [
        int((_source_index(_window_positions(n_out, k, s, d, before), n, "zeros") >= 0).sum())
        for n, n_out, k, s, d, (before, _) in zip(input_size, (h_out, w_out), (kh, kw), stride, dilation, pairs)
    ]
    connections = c_out * c_in * taps_inside[0] * taps_inside[1]
    dense = (c_out * h_out * w_out) * (c_in * input_size[0] * input_size[1])
    parameters = c_out * c_in * kh * kw
    return Connectivity(
        input_shape=(c_in, *input_size),
        output_shape=(c_out, h_out, w_out),
        dense_connections=dense,
        connections=connections,
        sparsity=1 - connections / dense,
        parameters=parameters,
        uses_per_parameter=connections / parameters,
    )
