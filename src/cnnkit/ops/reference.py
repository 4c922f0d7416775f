"""The lecture's loops: slow, plain-Python reference versions of the fast operations.

These follow the sums of the slides literally, one output at a time. They are teaching code
and the oracle the tests hold the fast tensor paths to; never use them on real images.
"""

from __future__ import annotations

import itertools

import torch


def cross_correlation_sum(x: torch.Tensor, kernel: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """g(i, j) = Σ_c Σ_u Σ_v x_pad(c, s·i + u, s·j + v) · k(c, u, v) for one (C, H, W) input.

    ``kernel`` is ``(C_out, C, K_h, K_w)``; zero padding ``p`` on every side. Returns ``(C_out, H_out, W_out)``.
    """
    channels, h, w = x.shape
    c_out, _, kh, kw = kernel.shape
    padded = torch.zeros(channels, h + 2 * padding, w + 2 * padding, dtype=x.dtype)
    padded[:, padding : padding + h, padding : padding + w] = x
    h_out = (h + 2 * padding - kh) // stride + 1
    w_out = (w + 2 * padding - kw) // stride + 1
    out = torch.zeros(c_out, h_out, w_out, dtype=x.dtype)
    for o, i, j in itertools.product(range(c_out), range(h_out), range(w_out)):
        total = 0.0
        for c, u, v in itertools.product(range(channels), range(kh), range(kw)):
            total += float(padded[c, stride * i + u, stride * j + v]) * float(kernel[o, c, u, v])
        out[o, i, j] = total
    return out


def convolution_sum(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """g(i, j) = Σ_α Σ_β x(α, β) · k(i − α, j − β): the full 2-D convolution of two matrices.

    ``x`` is ``(H, W)``, ``kernel`` ``(K_h, K_w)``; the result is ``(H + K_h − 1, W + K_w − 1)``,
    every (i, j) where kernel and input overlap.
    """
    h, w = x.shape
    kh, kw = kernel.shape
    out = torch.zeros(h + kh - 1, w + kw - 1, dtype=x.dtype)
    for i, j in itertools.product(range(h + kh - 1), range(w + kw - 1)):
        total = 0.0
        for alpha, beta in itertools.product(range(h), range(w)):
            if 0 <= i - alpha < kh and 0 <= j - beta < kw:
                total += float(x[alpha, beta]) * float(kernel[i - alpha, j - beta])
        out[i, j] = total
    return out


def max_pool_loop(x: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """out(c, i, j) = max_{0≤u,v<K} x(c, s·i + u, s·j + v) for one (C, H, W) input, no padding."""
    channels, h, w = x.shape
    h_out, w_out = (h - size) // stride + 1, (w - size) // stride + 1
    out = torch.empty(channels, h_out, w_out, dtype=x.dtype)
    for c, i, j in itertools.product(range(channels), range(h_out), range(w_out)):
        out[c, i, j] = x[c, stride * i : stride * i + size, stride * j : stride * j + size].max()
    return out
