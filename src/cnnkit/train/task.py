"""What a task gives the engine: its model, its loss and its evaluation.

The engine (`cnnkit.train.engine`) knows only batches ``(x, y)``, a loss to minimise and one
validation number to maximise. `ClassificationTask` is image classification; transfer
learning, detection and segmentation pass their own object with the same four members.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.models import create_model
from cnnkit.models.weights import load_weights
from cnnkit.train.metrics import evaluate


class ClassificationTask:
    """Classification with a registry model, cross-entropy and top-k accuracy.

    monitor: the key of `evaluate`'s result that picks the best checkpoint (higher is better).
    """

    monitor = "top1"

    def build_model(self, config, dataset) -> nn.Module:
        """`create_model(config.model)` sized for the dataset's classes, channels and (for
        networks without global pooling, e.g. LeNets) image size; pretrained ``config.weights``
        loaded with the classifier reset to the dataset's number of classes."""
        model = build_classifier(config.model, dataset.num_classes, dataset.in_channels, dataset.image_size)
        if config.weights:
            load_weights(model, config.weights, reset_head=True)
        return model

    def loss(self, outputs: Tensor, targets: Tensor, config) -> Tensor:
        """Mean cross-entropy with label smoothing ε: targets (1 − ε) one-hot + ε / K."""
        return F.cross_entropy(outputs.float(), targets, label_smoothing=config.label_smoothing)

    def correct(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Number of top-1 hits in the batch (for the training accuracy), a 0-d tensor."""
        return (outputs.argmax(1) == targets).sum()

    def evaluate(self, model: nn.Module, imageset, dataset, config, device: torch.device) -> dict:
        return evaluate(
            model, imageset, mean=dataset.mean, std=dataset.std, num_classes=dataset.num_classes,
            batch_size=max(256, config.batch_size), device=device, channels_last=config.channels_last,
            amp=config.amp, workers=config.workers,
        )


def build_classifier(name: str, num_classes: int, in_channels: int, image_size) -> nn.Module:
    """`create_model` for ``num_classes`` and ``in_channels``; models whose builder takes an
    ``input_size`` (fully connected layers sized for the input) get the image's height."""
    model = create_model(name, num_classes=num_classes, in_channels=in_channels)
    height, width = image_size
    wanted = tuple(getattr(model, "default_input_size", (in_channels, height, width))[1:])
    if wanted != (height, width) and "input_size" in inspect.signature(type(model).__init__).parameters:
        if height != width:
            raise ValueError(f"{name} takes square images; the data is {height}×{width} (pass image_size)")
        model = create_model(name, num_classes=num_classes, in_channels=in_channels, input_size=height)
    return model
