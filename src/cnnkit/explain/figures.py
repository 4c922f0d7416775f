"""Figures: feature maps scaled for viewing, and input → kernel → output panels."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def viewable(feature_map: torch.Tensor, signed: bool) -> torch.Tensor:
    """Map a feature map to [0, 1] for display.

    ``signed=False`` (blur, sharpen, pooling: outputs on the input's scale) clips to [0, 1].
    ``signed=True`` (derivative kernels that sum to 0) maps 0 to mid-grey and a magnitude m to
    black or white: v = clip(0.5 + x / 2m, 0, 1), so the sign of a response stays visible. m is
    the 99.5th percentile of |x|, so that a few extreme responses do not wash out the rest.
    """
    if not signed:
        return feature_map.clamp(0, 1)
    magnitudes = feature_map.detach().abs().flatten().float()
    peak = torch.quantile(magnitudes[:: max(1, magnitudes.numel() // 1_000_000)], 0.995).clamp_min(1e-12)
    return (0.5 + feature_map / (2 * peak)).clamp(0, 1)


def _as_picture(image: torch.Tensor):
    picture = image.detach().cpu().float()
    return picture[0].numpy() if picture.shape[0] == 1 else picture.permute(1, 2, 0).numpy()


def filtering_figure(
    image: torch.Tensor,
    output: torch.Tensor,
    path: str | os.PathLike,
    kernel: torch.Tensor | None = None,
    title: str = "",
) -> Path:
    """Save a figure of input | kernel (with its numbers, when small) | output, side by side.

    ``image`` and ``output`` are ``(C, H, W)`` in [0, 1]; ``kernel`` is ``(K_h, K_w)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if kernel is not None else 2
    figure, axes = plt.subplots(1, panels, figsize=(4 * panels, 4.4), layout="constrained")
    gray = {"cmap": "gray", "vmin": 0, "vmax": 1}
    axes[0].imshow(_as_picture(image), **gray)
    axes[0].set_title(f"input {image.shape[-2]}×{image.shape[-1]}")
    if kernel is not None:
        peak = float(kernel.abs().max()) or 1.0
        axes[1].imshow(kernel.cpu().numpy(), cmap="RdBu_r", vmin=-peak, vmax=peak)
        axes[1].set_title(f"kernel {kernel.shape[0]}×{kernel.shape[1]}")
        if kernel.numel() <= 49:
            for (i, j), value in zip(torch.cartesian_prod(torch.arange(kernel.shape[0]), torch.arange(kernel.shape[1])).tolist(), kernel.flatten().tolist()):
                colour = "white" if abs(value) > peak / 2 else "black"
                axes[1].text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=9, color=colour)
    axes[-1].imshow(_as_picture(output), **gray)
    axes[-1].set_title(f"output {output.shape[-2]}×{output.shape[-1]}")
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
