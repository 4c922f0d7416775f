"""A trained semantic segmenter: the model with what its outputs mean, read back and scored.

`load_segmenter(path)` reads a run folder (its ``best.pt``, else ``last.pt``) or a checkpoint
file with ``torch.load(weights_only=True)``: the training engine's checkpoints (format
"cnnkit-checkpoint-1", task "segmentation"; ``dataset`` holds classes, palette, ignore_index,
method and patch_size, ``config`` the rest of the architecture) and those of cnnkit's earlier
segmentation loop (format "cnnkit-segmentation-1", classes, palette and ignore_index at the top
level). `evaluate_segmenter` scores a segmenter on a dataset (`cnnkit.segmentation.metrics`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from cnnkit.data.transforms import normalize
from cnnkit.models.weights import load_torch_file
from cnnkit.data.masks import IGNORE_INDEX, SegmentationDataset
from cnnkit.segmentation.fcn import FCN, IMAGENET_MEAN, IMAGENET_STD
from cnnkit.segmentation.metrics import confusion_matrix, segmentation_scores
from cnnkit.segmentation.sliding import PatchClassifier, sliding_window_logits
from cnnkit.train.checkpoint import BEST, CHECKPOINT_FORMAT, LAST
from cnnkit.train.distributed import current_processes, evaluation_positions, sum_over_processes

METHODS = ("fcn", "sliding")
TASK = "segmentation"
LEGACY_FORMAT = "cnnkit-segmentation-1"


def segmentation_model(method: str, num_classes: int, variant: str = "8s", backbone: str = "resnet18",
                       patch_size: int = 25) -> nn.Module:
    """`PatchClassifier` (P = ``patch_size``) for "sliding", else `FCN` ``variant`` on ``backbone``."""
    if method == "sliding":
        return PatchClassifier(num_classes, patch_size)
    return FCN(num_classes, variant, backbone)


@dataclass
class Segmenter:
    """A segmentation model with what its inputs and outputs mean: ``predict`` takes images
    ``(3, H, W)`` in [0, 1] and returns ``(H, W)`` int64 class maps on the CPU. ``config`` is the
    run's configuration as stored in its checkpoint (a dict)."""

    model: nn.Module
    method: str
    classes: list[str]
    palette: list[tuple[int, int, int]]
    patch_size: int = 0
    ignore_index: int = IGNORE_INDEX
    config: dict = field(default_factory=dict)

    def to(self, device: str | torch.device) -> Segmenter:
        """Move the model to ``device`` (in place); inputs follow it."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def logits(self, image: Tensor) -> Tensor:
        """``(K, H, W)`` class scores of one image, computed on the model's device."""
        self.model.eval()
        device = next(self.model.parameters()).device
        x = normalize(image[None].float().to(device), IMAGENET_MEAN, IMAGENET_STD)  # (1, 3, H, W)
        if self.method == "sliding":
            return sliding_window_logits(self.model, x[0], self.patch_size)
        return self.model(x)[0]

    def predict(self, images: list[Tensor]) -> list[Tensor]:
        return [self.logits(image).argmax(0).cpu() for image in images]


def load_segmenter(path: str | os.PathLike) -> Segmenter:
    """A `Segmenter` in eval mode on the CPU from a run folder (its ``best.pt``, else ``last.pt``)
    or a checkpoint of either format. Raises FileNotFoundError for a missing checkpoint and
    ValueError naming the file when it holds no segmenter."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST if (path / BEST).exists() else path / LAST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (expected a run folder or its best.pt)")
    return segmenter_from_checkpoint(load_torch_file(path, trusted=False), path)


def segmenter_from_checkpoint(state, path: Path) -> Segmenter:
    """The `Segmenter` of a checkpoint already read from ``path``; ValueError naming the file
    and what it holds when that is not a segmentation checkpoint."""
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, LEGACY_FORMAT):
        raise ValueError(f"{path}: not a cnnkit segmentation checkpoint (no cnnkit checkpoint format)")
    if state["format"] == CHECKPOINT_FORMAT and state.get("task", "classification") != TASK:
        raise ValueError(f"{path}: not a cnnkit segmentation checkpoint (it holds a {state.get('task', 'classification')} "
                         "model; use its own commands)")
    config = state["config"]
    if state["format"] == LEGACY_FORMAT:  # the earlier loop kept these beside the config
        held = {"classes": state["classes"], "palette": state["palette"], "ignore_index": state["ignore_index"],
                "method": config["method"], "patch_size": config["patch_size"]}
    else:
        held = state["dataset"]
    model = segmentation_model(held["method"], len(held["classes"]), config.get("variant", "8s"),
                               config.get("backbone", "resnet18"), held["patch_size"])
    model.load_state_dict(state["model"])
    return Segmenter(model.eval(), held["method"], list(held["classes"]), [tuple(c) for c in held["palette"]],
                     int(held["patch_size"]), int(held["ignore_index"]), dict(config))


def evaluate_segmenter(segmenter: Segmenter, dataset: SegmentationDataset, device: str | torch.device = "cpu") -> dict:
    """Pixel accuracy, mean class accuracy, per-class and mean IoU (`segmentation_scores`), the
    confusion matrix ``confusion`` (pixels; rows true class), the mean seconds per image and the
    image count, with the model moved to ``device``.

    In a distributed run (torch.distributed initialised) each process segments its
    `evaluation_positions` and the confusion matrices are summed, so every figure but the time
    equals a single process's. Raises ValueError when the dataset's classes differ from the model's.
    """
    if list(dataset.classes) != list(segmenter.classes):
        raise ValueError(f"{dataset.name}: classes {dataset.classes} do not match the model's {segmenter.classes}")
    processes = current_processes(torch.device(device))
    segmenter.to(device)
    k = len(segmenter.classes)
    confusion = torch.zeros(k, k, dtype=torch.int64)
    seconds = 0.0
    for index in evaluation_positions(len(dataset), processes):
        image, mask = dataset[index]
        start = time.perf_counter()
        predicted = segmenter.predict([image])[0]
        seconds += time.perf_counter() - start
        confusion += confusion_matrix(predicted, mask, k, dataset.ignore_index)
    confusion = sum_over_processes(confusion, processes)
    seconds = float(sum_over_processes(torch.tensor([seconds], dtype=torch.float64), processes))
    scores = segmentation_scores(confusion, segmenter.classes)
    scores.update(confusion=confusion.tolist(), seconds_per_image=seconds / max(1, len(dataset)), images=len(dataset))
    return scores
