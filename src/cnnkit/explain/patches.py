"""The image patches of a dataset that most activate one channel (Zeiler & Fergus 2014, Fig. 2):
for each image the channel's strongest response, the top k over the dataset, each shown as the
input region it sees beside its deconvnet projection."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnnkit.explain.deconvnet import deconvnet
from cnnkit.explain.layers import resolve_layer
from cnnkit.models import extract_features


@dataclass
class TopPatch:
    """One of the strongest responses of a channel: where it is and what it sees."""

    index: int  # image in the dataset
    position: tuple[int, int]  # (row, column) in the feature map
    activation: float
    box: tuple[int, int, int, int]  # (top, left, bottom, right) in the image, bottom/right exclusive
    projection: Tensor  # (C, H, W) deconvnet projection over the whole image


def top_patches(
    model: nn.Module, images: Tensor, layer: str, channel: int, k: int = 9, batch_size: int = 32
) -> list[TopPatch]:
    """The ``k`` images of ``images`` (N, C, H, W, normalised) with the largest response of
    ``channel`` at ``layer``, strongest first; one patch per image, at its maximum.

    The box is the bounding box of the deconvnet projection's support: the pixels that reach the
    activation through the switches the image set, within the layer's receptive field.
    """
    path = resolve_layer(model, layer)
    model.eval()
    peaks, positions = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            maps = extract_features(model, images[start:start + batch_size], [path])[path]  # (B, C, h, w)
            if channel >= maps.shape[1] or channel < 0:
                raise ValueError(f"channel {channel} is out of range: {path} has {maps.shape[1]} channels")
            values, flat = maps[:, channel].flatten(1).max(1)
            peaks.append(values)
            positions += [(int(f) // maps.shape[-1], int(f) % maps.shape[-1]) for f in flat]
    peaks = torch.cat(peaks)
    patches = []
    for index in peaks.argsort(descending=True)[:k].tolist():
        projection = deconvnet(model, images[index:index + 1], path, channel, positions[index])
        patches.append(TopPatch(index, positions[index], float(peaks[index]), support_box(projection.image), projection.image))
    return patches


def support_box(projection: Tensor, threshold: float = 1e-3) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) around the pixels of (C, H, W) with |value| above ``threshold`` × the
    maximum; the whole image when the projection is zero."""
    magnitude = projection.abs().amax(0)  # (H, W)
    h, w = magnitude.shape
    peak = float(magnitude.max())
    if peak == 0:
        return (0, 0, h, w)
    rows = torch.nonzero((magnitude > threshold * peak).any(1)).flatten()
    cols = torch.nonzero((magnitude > threshold * peak).any(0)).flatten()
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
