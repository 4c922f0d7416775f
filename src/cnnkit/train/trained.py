"""A trained model back from its run folder or checkpoint, ready for prediction or export."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cnnkit.models.registry import create_classifier
from cnnkit.train.checkpoint import BEST, check_checkpoint, load_checkpoint, load_latest
from cnnkit.train.config import TrainConfig


@dataclass
class TrainedModel:
    """The model in eval mode on the CPU, with what its input needs and what its outputs mean.

    classes: the class names, index = output. mean, std: per-channel normalisation of images in
    [0, 1] before the model. image_size: (H, W) it was trained at; in_channels: C.
    config: the run's TrainConfig. checkpoint: the file the weights came from.
    """

    model: nn.Module
    classes: list[str]
    mean: list[float]
    std: list[float]
    image_size: tuple[int, int]
    in_channels: int
    config: TrainConfig
    checkpoint: Path


def load_trained(path: str | os.PathLike) -> TrainedModel:
    """Load a run folder (its best checkpoint, else the last good one) or a checkpoint file.

    The model is rebuilt with `create_model` from the stored config and gets the stored weights
    (read with ``torch.load(weights_only=True)``: no code runs). Raises FileNotFoundError for a
    missing path, `CorruptCheckpointError` for a damaged or foreign file and ValueError for a
    checkpoint of another task.
    """
    path = Path(path)
    if path.is_dir():
        if (path / BEST).exists():
            state, path = load_checkpoint(path / BEST), path / BEST
        else:
            state, path = load_latest(path)
    else:
        state = load_checkpoint(path)
    return trained_from_checkpoint(state, path)


def trained_from_checkpoint(state: dict, path: Path) -> TrainedModel:
    """The classifier of a training checkpoint already read from ``path``."""
    state = check_checkpoint(state, path)
    kind = state.get("task", "classification")
    if kind != "classification":
        raise ValueError(f"{path} holds a {kind} model, not a classifier; use the {kind} commands")
    config = TrainConfig.from_dict(state["config"])
    data = state["dataset"]
    image_size = (int(data["image_size"][0]), int(data["image_size"][1]))
    model = create_classifier(config.model, len(data["classes"]), int(data["in_channels"]), image_size)
    model.load_state_dict(state["model"])
    model.eval()
    return TrainedModel(model=model, classes=list(data["classes"]), mean=list(data["mean"]),
                        std=list(data["std"]), image_size=image_size, in_channels=int(data["in_channels"]),
                        config=config, checkpoint=path)
