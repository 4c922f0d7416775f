"""Opening a model file for inference, whoever wrote it and whatever task it does.

`open_model(path)` reads the file once and returns an `OpenedModel`: the model in eval mode
on the CPU and what using it needs, its task, the names of its outputs, the input
normalisation and size. It accepts

- a run folder (its ``best.pt``, else its last good checkpoint) or a checkpoint written by
  the training engine (`cnnkit.train.checkpoint`, any task);
- a safetensors file written by `cnnkit.models.weights.save_weights`, whose metadata names
  the architecture, the classes and the normalisation;
- a plain classifier state dict, such as torchvision's ``resnet18-f37072fd.pth`` or the
  CIFAR-10 ResNets' ``resnet20-12fca82f.th``: its architecture is recognised from the
  tensors' names and shapes (`cnnkit.models.recognition`), and without metadata it is taken
  to expect ImageNet's mean and standard deviation, the convention of both;
- a state dict of torchvision's COCO ``fasterrcnn_resnet50_fpn``, ``maskrcnn_resnet50_fpn`` or
  ``fcn_resnet50``, recognised by their heads' tensors.

Nothing is unpickled beyond tensors and plain values (``torch.load(weights_only=True)``), and
a safetensors file is never handed to ``torch.load``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from cnnkit.models import create_model
from cnnkit.models.recognition import head_and_input_sizes, recognise_architecture
from cnnkit.models.weights import (
    WeightsMismatchError,
    apply_state_dict,
    existing_file,
    read_state_dict,
    torch_file_or_none,
)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class OpenedModel:
    """A model ready for inference and what its inputs and outputs mean.

    task: "classification", "detection", "instance-segmentation" or "segmentation".
    model: in eval mode on the CPU (for segmentation a `cnnkit.segmentation.Segmenter`, the
    network with its palette and window). classes: the names of the outputs (classification and
    segmentation: index = output; detection: label k is classes[k - 1]). architecture: the
    `create_model` name, or the detection or segmentation method. mean, std:
    per-channel normalisation of images in [0, 1]; image_size: (H, W) it expects, in_channels: C.
    source: the file the weights were read from. config: the run's config (a dict) for
    checkpoints of the engine. notes: what was assumed (e.g. ImageNet normalisation).
    """

    task: str
    model: nn.Module
    classes: list[str]
    architecture: str
    source: Path
    mean: list[float] | None = None
    std: list[float] | None = None
    image_size: tuple[int, int] | None = None
    in_channels: int = 3
    config: dict | None = None
    notes: list[str] = field(default_factory=list)


def open_model(path: str | os.PathLike, architecture: str | None = None) -> OpenedModel:
    """Open a run folder, a checkpoint or a weights file (see the module), reading it once.

    architecture: the registered classifier a plain state dict is for (default: its metadata,
    else recognised from its tensors).

    Raises FileNotFoundError for a missing path, ValueError for a folder that is not a run,
    `WeightsMismatchError` when the weights fit no registered architecture (or not the one
    named), and `cnnkit.models.weights`' errors for corrupt or unsafe files.
    """
    from cnnkit.train.checkpoint import BEST, LAST, PREVIOUS, load_latest

    path = Path(path)
    if path.is_dir():
        if (path / BEST).exists():
            path = path / BEST
        elif not any((path / name).exists() for name in (LAST, PREVIOUS)):
            raise ValueError(f"{path} is a folder but not a cnnkit run (no {BEST} or {LAST}); "
                             "pass a run folder, a checkpoint or a weights file")
        else:  # a run stopped before its first epoch ended: its last good checkpoint
            state, path = load_latest(path)
            return _opened_checkpoint(state, path)
    path = existing_file(path)
    checkpoint = torch_file_or_none(path)
    if isinstance(checkpoint, dict) and "format" in checkpoint:
        return _opened_checkpoint(checkpoint, path)
    state, metadata = read_state_dict(path, already_read=checkpoint)
    if architecture is None and not metadata:
        opened = _opened_torchvision_task(state, path)
        if opened is not None:
            return opened
    return plain_classifier(state, metadata, path, architecture)


def _opened_checkpoint(checkpoint: dict, path: Path) -> OpenedModel:
    """The model of a cnnkit checkpoint of any task, in the engine's format or an older one."""
    from cnnkit.detection.checkpoints import detector_checkpoint, detector_from
    from cnnkit.segmentation.segmenter import LEGACY_FORMAT, TASK, segmenter_from_checkpoint
    from cnnkit.train.trained import trained_from_checkpoint

    detector = detector_checkpoint(checkpoint, path)
    if detector is not None:
        config = detector.config
        return OpenedModel(detector.task, detector_from(detector), detector.categories,
                           config.get("method", "mask-rcnn"), path, config=config)
    if checkpoint.get("task") == TASK or checkpoint["format"] == LEGACY_FORMAT:
        segmenter = segmenter_from_checkpoint(checkpoint, path)
        return OpenedModel(TASK, segmenter, segmenter.classes, segmenter.method, path, config=segmenter.config)
    return _opened_classifier(trained_from_checkpoint(checkpoint, path))


def _opened_torchvision_task(state: dict, path: Path) -> OpenedModel | None:
    """torchvision's COCO Mask R-CNN, Faster R-CNN or FCN from its state dict, or None."""
    from cnnkit.detection.checkpoints import DETECTION, INSTANCES, torchvision_detector

    if "roi_heads.box_predictor.cls_score.weight" in state:
        mask = "roi_heads.mask_predictor.mask_fcn_logits.weight" in state
        if mask:
            from cnnkit.detection.mask_rcnn import maskrcnn_resnet50_fpn as builder
        else:
            from cnnkit.detection.faster_rcnn import fasterrcnn_resnet50_fpn as builder
        model = torchvision_detector(state, path, INSTANCES if mask else DETECTION, builder,
                                     "roi_heads.box_predictor.cls_score.weight")
        return OpenedModel(INSTANCES if mask else DETECTION, model, list(model.categories),
                           builder.__name__, path, IMAGENET_MEAN, IMAGENET_STD)
    from cnnkit.segmentation.predict import FCN_KEY, torchvision_fcn

    if FCN_KEY in state and any(key.startswith("backbone.layer4.") for key in state):
        segmenter = torchvision_fcn(state, path)
        return OpenedModel("segmentation", segmenter, segmenter.classes, "fcn_resnet50", path,
                           IMAGENET_MEAN, IMAGENET_STD)
    return None


def plain_classifier(state: dict, metadata: dict, path: Path, architecture: str | None = None) -> OpenedModel:
    """A registered classifier built for the tensors of ``state`` (read from ``path``) and
    loaded with them; what ``metadata`` (safetensors) does not say is assumed and noted."""
    notes = []
    architecture = architecture or metadata.get("architecture")
    if architecture is None:
        architecture = recognise_architecture(state, path)
        notes.append(f"architecture recognised from the tensors: {architecture}")
    num_classes, in_channels = head_and_input_sizes(architecture, state)
    model = create_model(architecture, num_classes=num_classes, in_channels=in_channels)
    try:
        apply_state_dict(model, state, path, metadata)
    except WeightsMismatchError as error:
        detail = "; ".join(line.strip() for line in str(error).splitlines()[1:] if "strict=False" not in line)
        raise WeightsMismatchError(
            f"{path} does not fit architecture {architecture!r}: {detail}; name the right one (--model)"
        ) from None
    channels = model.default_input_size[0]
    if "mean" not in metadata:
        notes.append("no normalisation stored with the weights: ImageNet mean and std assumed")
    default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ([0.5], [0.25])
    image_size = metadata.get("image_size") or model.default_input_size[1:]
    outputs = model.get_submodule(model.classifier_name).out_features
    classes = metadata.get("class_names")
    if not classes:
        classes = [f"class {index}" for index in range(outputs)]
        notes.append(f"no class names stored with the weights: outputs named class 0 … class {outputs - 1}")
    return OpenedModel("classification", model.eval(), list(classes), architecture, path,
                       list(metadata.get("mean") or default_mean), list(metadata.get("std") or default_std),
                       (int(image_size[0]), int(image_size[1])), channels, None, notes)


def _opened_classifier(trained) -> OpenedModel:
    return OpenedModel("classification", trained.model, list(trained.classes), trained.config.model,
                       trained.checkpoint, list(trained.mean), list(trained.std), tuple(trained.image_size),
                       trained.in_channels, trained.config.to_dict())
