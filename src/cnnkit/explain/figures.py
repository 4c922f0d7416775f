"""Figures: feature maps scaled for viewing, input → kernel → output panels, and the PNGs of
the visualisations (kernels, feature maps, deconvnet projections, top patches, heat maps)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from cnnkit.figures import pyplot


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
    plt = pyplot()
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


def _save(figure, path: str | os.PathLike) -> Path:
    plt = pyplot()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a .png file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _stretch(tile: torch.Tensor) -> torch.Tensor:
    """Min-max to [0, 1] (a constant tile becomes mid-grey)."""
    low, high = tile.min(), tile.max()
    return (tile - low) / (high - low) if high > low else torch.full_like(tile, 0.5)


def image_grid(tiles, labels, path, title: str, columns: int | None = None, cmap: str = "gray", tile_inches: float = 1.3) -> Path:
    """Save ``tiles`` ((C, h, w) or (h, w) tensors in [0, 1]; C = 1 or 3) as a grid, each titled by ``labels``."""
    plt = pyplot()
    count = len(tiles)
    columns = columns or max(1, min(count, math.ceil(math.sqrt(count))))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(tile_inches * columns, tile_inches * rows + 0.6),
                                squeeze=False, layout="constrained")
    for axis in axes.flat:
        axis.set_axis_off()
    for axis, tile, label in zip(axes.flat, tiles, labels):
        axis.imshow(_as_picture(tile if tile.dim() == 3 else tile[None]), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(label, fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def filters_figure(weights: torch.Tensor, path, title: str, max_filters: int = 64, max_channels: int = 8) -> Path:
    """Kernels (C_out, C_in, K_h, K_w) as images: with C_in = 3 each filter in colour (min-max per
    filter); otherwise one row per filter (up to ``max_filters``) and one grey tile per input
    channel (up to ``max_channels``), on a scale symmetric around zero (grey = 0) per filter."""
    out_channels, in_channels = weights.shape[:2]
    if in_channels == 3:
        tiles = [_stretch(kernel) for kernel in weights[:max_filters]]
        labels = [f"filter {i}" for i in range(len(tiles))]
        return image_grid(tiles, labels, path, title, tile_inches=1.0)
    filters, channels = min(out_channels, max_filters // 4 or 1), min(in_channels, max_channels)
    tiles, labels = [], []
    for f in range(filters):
        peak = weights[f, :channels].abs().max().clamp_min(1e-12)
        for c in range(channels):
            tiles.append((0.5 + weights[f, c] / (2 * peak)).clamp(0, 1))
            labels.append(f"f{f} ← in {c}")
    return image_grid(tiles, labels, path, title, columns=channels, tile_inches=1.0)


def feature_maps_figure(maps: torch.Tensor, picture: torch.Tensor, path, title: str, count: int = 31) -> Path:
    """The input and the ``count`` most active channels of ``maps`` (C, h, w), each stretched to
    [0, 1] on its own (the label gives its maximum)."""
    order = maps.flatten(1).amax(1).argsort(descending=True)[:count].tolist()
    tiles = [picture] + [_stretch(maps[c]) for c in order]
    labels = ["input"] + [f"ch {c} (max {float(maps[c].max()):.2g})" for c in order]
    return image_grid(tiles, labels, path, title, cmap="viridis")


def deconvnet_figure(picture: torch.Tensor, projections, path, title: str) -> Path:
    """The input, then each deconvnet projection (signed, grey = 0) with its channel, position and activation."""
    tiles = [picture] + [viewable(p.image, signed=True).mean(0) if p.image.shape[0] != 3 else viewable(p.image, signed=True) for p in projections]
    labels = ["input"] + [f"ch {p.channel} at {p.position}\nact {p.activation:.3g}" for p in projections]
    return image_grid(tiles, labels, path, title, tile_inches=1.8)


def top_patches_figure(pictures: torch.Tensor, patches, path, title: str) -> Path:
    """For each patch, the image region it sees and its deconvnet projection over that region."""
    tiles, labels = [], []
    for rank, patch in enumerate(patches, start=1):
        top, left, bottom, right = patch.box
        tiles.append(pictures[patch.index][:, top:bottom, left:right])
        labels.append(f"#{rank} image {patch.index}\nact {patch.activation:.3g}")
        projection = viewable(patch.projection[:, top:bottom, left:right], signed=True)
        tiles.append(projection if projection.shape[0] == 3 else projection.mean(0))
        labels.append(f"#{rank} projection")
    return image_grid(tiles, labels, path, title, columns=6, tile_inches=1.4)


def heatmap_figure(picture: torch.Tensor, heatmap: torch.Tensor, path, title: str, heatmap_title: str, signed: bool = False) -> Path:
    """Input | heat map | heat map over the input. ``heatmap`` (h, w) is stretched to the input's size for the overlay."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(10, 3.8), layout="constrained")
    image = _as_picture(picture)
    cmap = "RdBu_r" if signed else "jet"
    peak = float(heatmap.abs().max()) or 1.0
    limits = {"vmin": -peak, "vmax": peak} if signed else {"vmin": float(heatmap.min()), "vmax": float(heatmap.max()) or 1.0}
    extent = (0, picture.shape[-1], picture.shape[-2], 0)
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("input")
    shown = axes[1].imshow(heatmap.cpu().numpy(), cmap=cmap, extent=extent, **limits)
    axes[1].set_title(heatmap_title)
    figure.colorbar(shown, ax=axes[1], shrink=0.8)
    axes[2].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[2].imshow(heatmap.cpu().numpy(), cmap=cmap, alpha=0.5, extent=extent, **limits)
    axes[2].set_title("overlay")
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title)
    return _save(figure, path)
