"""Trained detectors back from their files, whichever cnnkit wrote them, or torchvision.

The training engine's checkpoints (``format`` "cnnkit-checkpoint-1") name their task,
"detection" (Faster R-CNN, Fast R-CNN, R-CNN) or "instance-segmentation" (Mask R-CNN), and keep
the run's config, the categories under ``dataset`` and the weights under ``model``. Those of
the loops before the engine ("cnnkit-detection-1", "cnnkit-mask-rcnn-1") keep the categories
at the top and call the config's ``runs_dir`` ``runs``. A file is read once, with
``torch.load(weights_only=True)`` (no code runs); one that is no cnnkit checkpoint is a state
dict for torchvision's layout (`cnnkit.detection.weights`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cnnkit.models.weights import torch_file_or_none
from cnnkit.train.checkpoint import BEST, CHECKPOINT_FORMAT

DETECTION, INSTANCES = "detection", "instance-segmentation"
WHAT = {DETECTION: "detection", INSTANCES: "Mask R-CNN"}
BEFORE_ENGINE = {DETECTION: "cnnkit-detection-1", INSTANCES: "cnnkit-mask-rcnn-1"}
METHODS = ("faster-rcnn", "fast-rcnn", "rcnn")


@dataclass
class DetectorCheckpoint:
    """A detector checkpoint: its task, the run's config (a dict of today's field names), the
    categories (label k is ``categories[k - 1]``), the weights and the file. ``before_engine``:
    written before the engine, when a COCO file's validation and test were the same images."""

    task: str
    config: dict
    categories: list[str]
    weights: dict
    path: Path
    before_engine: bool = False


def build_detector(method: str, backbone: str, categories: list[str], min_size: int = 128, max_size: int = 256):
    """A fresh detector of ``method`` (faster-rcnn, fast-rcnn or rcnn) for ``categories``."""
    from cnnkit.detection.fast_rcnn import fast_rcnn
    from cnnkit.detection.faster_rcnn import faster_rcnn
    from cnnkit.detection.rcnn import rcnn

    if method == "faster-rcnn":
        return faster_rcnn(backbone, categories, min_size=min_size, max_size=max_size)
    if method == "fast-rcnn":
        return fast_rcnn(backbone, categories, min_size=min_size, max_size=max_size)
    if method == "rcnn":
        return rcnn(categories, backbone)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def detector_from(checkpoint: DetectorCheckpoint) -> nn.Module:
    """The checkpoint's detector (a Mask R-CNN for instance segmentation) with its weights, in eval mode."""
    config = checkpoint.config
    if checkpoint.task == INSTANCES:
        from cnnkit.detection.mask_rcnn import mask_rcnn

        model = mask_rcnn(config["backbone"], checkpoint.categories, min_size=config["min_size"],
                          max_size=config["max_size"])
    else:
        model = build_detector(config["method"], config["backbone"], checkpoint.categories, config["min_size"],
                               config["max_size"])
    model.load_state_dict(checkpoint.weights)
    return model.eval()


def detector_checkpoint(contents: dict, path: Path) -> DetectorCheckpoint | None:
    """The detector checkpoint (either task, either format) in ``contents``, a checkpoint already
    read from ``path``; None when it holds another kind of model."""
    format, kind = contents["format"], contents.get("task", "classification")
    if format == CHECKPOINT_FORMAT and kind in WHAT:
        return DetectorCheckpoint(kind, dict(contents["config"]), list(contents["dataset"]["categories"]),
                                  contents["model"], path)
    kind = {old: name for name, old in BEFORE_ENGINE.items()}.get(format)
    if kind is None:
        return None
    config = {("runs_dir" if key == "runs" else key): value for key, value in contents["config"].items()}
    return DetectorCheckpoint(kind, config, list(contents["categories"]), contents["model"], path, True)


def read_detector_checkpoint(path: str | os.PathLike, task: str) -> DetectorCheckpoint:
    """The cnnkit checkpoint of ``task`` in a run folder (its ``best.pt``) or file, read once.
    Raises FileNotFoundError for a missing one and ValueError naming the file for anything else."""
    path = Path(path)
    path = path / BEST if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (expected a run folder or its best.pt)")
    contents = torch_file_or_none(path)  # None for safetensors
    if not (isinstance(contents, dict) and "format" in contents):
        raise ValueError(f"{path}: not a cnnkit {WHAT[task]} checkpoint")
    checkpoint = detector_checkpoint(contents, path)
    if checkpoint is None or checkpoint.task != task:
        kind = checkpoint.task if checkpoint else contents.get(
            "task", "classification" if contents["format"] == CHECKPOINT_FORMAT else repr(contents["format"]))
        raise ValueError(f"{path} holds a {kind} model, not a {WHAT[task]} one; use the command of its task")
    return checkpoint


def torchvision_detector(state: dict, path: str | os.PathLike, task: str, torchvision_model,
                         class_weights: str) -> nn.Module:
    """``torchvision_model(num_classes=K)`` loaded with the torchvision state dict ``state`` read
    from ``path``, K read from its tensor ``class_weights``, in eval mode."""
    from cnnkit.detection.weights import load_detector_weights

    if class_weights not in state:
        raise ValueError(f"{path}: neither a cnnkit {WHAT[task]} checkpoint nor a torchvision state dict of that "
                         f"detector (no {class_weights})")
    model = torchvision_model(num_classes=state[class_weights].shape[0])
    load_detector_weights(model, path, state=state)
    return model.eval()
