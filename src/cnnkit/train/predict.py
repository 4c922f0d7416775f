"""Predicting classes of image files with a trained model.

Each image is read safely (`cnnkit.data.read_image`), converted to the model's channel count,
resized to the size it was trained at, normalised with the training statistics, and passed
through the model prepared for inference (batch norm folded, channels_last, no autograd).
Class probabilities are the softmax of the logits, p_k = exp(z_k) / Σ_j exp(z_j).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from cnnkit.data import read_image
from cnnkit.data.dataset import set_channels
from cnnkit.data.transforms import normalize, resize
from cnnkit.models.speed import prepare_for_inference


@dataclass(frozen=True)
class Prediction:
    """The ``k`` most probable classes of one image, most probable first."""

    path: str
    classes: list[str]
    probabilities: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def predict(
    trained, paths: Sequence[str | os.PathLike], topk: int = 5, batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> list[Prediction]:
    """Top-``topk`` classes and probabilities for every image file in ``paths``.

    trained: a classifier with what its inputs need (`cnnkit.inference.OpenedModel`, or a
    `TrainedModel`: model, classes, mean, std, image_size, in_channels).

    Raises the errors of `read_image` (naming the file) for a missing, corrupt or oversized
    image, before any prediction is made, so a bad path in a list is found at once.
    """
    if topk < 1:
        raise ValueError(f"topk must be at least 1, got {topk}")
    topk = min(topk, len(trained.classes))
    images = [resize(set_channels(read_image(path), trained.in_channels), trained.image_size) for path in paths]
    device = torch.device(device)
    model = prepare_for_inference(trained.model, (trained.in_channels, *trained.image_size)).to(device)
    predictions = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack(images[start : start + batch_size]).to(device)  # (B, C, H, W)
        batch = normalize(batch, trained.mean, trained.std)
        with torch.inference_mode():
            probabilities = model(batch).float().softmax(dim=1)  # (B, classes)
        top = probabilities.topk(topk, dim=1)
        for offset, (values, indices) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            predictions.append(Prediction(str(paths[start + offset]), [trained.classes[i] for i in indices], values))
    return predictions
