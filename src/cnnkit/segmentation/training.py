"""Training a semantic segmenter: a small loop with the engine's checkpoint pieces.

The engine in `cnnkit.train` reads classification datasets (one label per image) through
`cnnkit.data.load_dataset`; segmentation batches carry a label per pixel and are scored by mean
IoU, so this loop is its own, built from the same parts: AdamW (or SGD) with a cosine learning
rate, the per-pixel cross-entropy that ignores void, validation mean IoU after every epoch,
``best.pt`` kept by it, ``last.pt`` written atomically (`cnnkit.train.checkpoint.save_checkpoint`,
previous one kept), ``metrics.jsonl`` one line per epoch and ``report.json`` with the test split's
figures and time per image.

Methods: "fcn" (`FCN` 32s/16s/8s on a cnnkit ResNet) and "sliding" (`PatchClassifier` trained on
random pixels' patches, applied at every pixel).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.data.transforms import normalize
from cnnkit.files import atomic_write
from cnnkit.segmentation.datasets import SegmentationDataset, load_segmentation_data
from cnnkit.segmentation.fcn import FCN, IMAGENET_MEAN, IMAGENET_STD
from cnnkit.segmentation.metrics import confusion_matrix, segmentation_scores
from cnnkit.segmentation.sliding import PatchClassifier, sample_patches, sliding_window_logits
from cnnkit.train.checkpoint import numbered_run_dir, read_run_checkpoint, save_checkpoint

METHODS = ("fcn", "sliding")
FORMAT = "cnnkit-segmentation-1"


@dataclass
class SegmentationConfig:
    """What a segmentation run trains, on what, and how.

    method: "fcn" or "sliding". data: "digit-scenes" (built in), a CamVid or VOC folder, or a
    COCO annotation JSON (`load_segmentation_data`); image_dir: the images of a COCO file.
    variant, backbone: FCN-32s/16s/8s on a cnnkit ResNet. patch_size, patches_per_image: the
    sliding-window classifier's patch and the pixels sampled per training image.
    crop_size: random square crops for training (needed when images differ in size); flip:
    random horizontal flips. threads: torch's intra-op threads (None: torch's default).
    """

    method: str = "fcn"
    data: str = "digit-scenes"
    image_dir: str | None = None
    variant: str = "8s"
    backbone: str = "resnet18"
    patch_size: int = 25
    patches_per_image: int = 64
    epochs: int = 8
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    crop_size: int | None = None
    flip: bool = False
    train_images: int | None = None
    val_images: int | None = None
    test_images: int | None = None
    lenient: bool = False
    seed: int = 0
    threads: int | None = None
    runs: str = "runs"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch_size must be ≥ 1 and lr > 0")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be adamw or sgd, got {self.optimizer!r}")


@dataclass
class Segmenter:
    """A trained segmentation model with what its inputs and outputs mean: ``predict`` takes
    images ``(3, H, W)`` in [0, 1] and returns ``(H, W)`` int64 class maps."""

    model: nn.Module
    method: str
    classes: list[str]
    palette: list[tuple[int, int, int]]
    patch_size: int = 0
    ignore_index: int = 255

    @torch.no_grad()
    def logits(self, image: Tensor) -> Tensor:
        """``(K, H, W)`` class scores of one image."""
        self.model.eval()
        x = normalize(image[None].float(), IMAGENET_MEAN, IMAGENET_STD)
        if self.method == "sliding":
            return sliding_window_logits(self.model, x[0], self.patch_size)
        return self.model(x)[0]

    def predict(self, images: list[Tensor]) -> list[Tensor]:
        return [self.logits(image).argmax(0) for image in images]


def build_model(config: SegmentationConfig, num_classes: int) -> nn.Module:
    if config.method == "sliding":
        return PatchClassifier(num_classes, config.patch_size)
    return FCN(num_classes, config.variant, config.backbone)


def evaluate_segmenter(segmenter: Segmenter, dataset: SegmentationDataset) -> dict:
    """Pixel accuracy, mean class accuracy, per-class and mean IoU, the confusion matrix
    (rows true class) and the mean seconds per image."""
    if list(dataset.classes) != list(segmenter.classes):
        raise ValueError(f"{dataset.name}: classes {dataset.classes} do not match the model's {segmenter.classes}")
    k = len(segmenter.classes)
    confusion = torch.zeros(k, k, dtype=torch.int64)
    seconds = 0.0
    for index in range(len(dataset)):
        image, mask = dataset[index]
        start = time.perf_counter()
        predicted = segmenter.predict([image])[0]
        seconds += time.perf_counter() - start
        confusion += confusion_matrix(predicted, mask, k, dataset.ignore_index)
    scores = segmentation_scores(confusion, segmenter.classes)
    scores.update(confusion=confusion.tolist(), seconds_per_image=seconds / max(1, len(dataset)), images=len(dataset))
    return scores


def train_segmenter(config: SegmentationConfig | None = None, log=print) -> dict:
    """Train, validate every epoch, keep the best by validation mean IoU, test it; returns the
    report (also ``RUN/report.json``) with ``run_dir``."""
    config = config or SegmentationConfig()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    val_default = 10 if config.method == "sliding" else None  # a sliding window is slow to validate
    train_set, val_set, test_set = load_segmentation_data(
        config.data, config.image_dir, config.seed, config.train_images, config.val_images or val_default,
        config.test_images, config.lenient)
    log(f"data: {train_set.name}: {len(train_set)} train, {len(val_set)} val, {len(test_set)} test images; "
        f"classes ({train_set.num_classes}): {', '.join(train_set.classes)}")
    model = build_model(config, train_set.num_classes)
    segmenter = Segmenter(model, config.method, train_set.classes, train_set.palette, config.patch_size,
                          train_set.ignore_index)
    run_dir = numbered_run_dir(Path(config.runs) / (config.name or f"{config.method}-{Path(config.data).stem}"))
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    log(f"run folder: {run_dir}")
    history = _fit(segmenter, config, train_set, val_set, run_dir, log)
    best = load_segmenter(run_dir / "best.pt")
    test = evaluate_segmenter(best, test_set)
    report = {"run_dir": str(run_dir), "config": dataclasses.asdict(config), "history": history,
              "best_epoch": max(history, key=lambda r: _sortable(r["val_mean_iou"]))["epoch"], "test": test,
              "train_seconds": sum(r["train_seconds"] for r in history)}
    with atomic_write(run_dir / "report.json") as temporary:
        temporary.write_text(json.dumps(report, indent=2))
    log(f"test: mean IoU {test['mean_iou']:.3f}, pixel accuracy {test['pixel_accuracy']:.3f}, mean class accuracy "
        f"{test['mean_class_accuracy']:.3f}, {1000 * test['seconds_per_image']:.1f} ms/image")
    return report


def _fit(segmenter: Segmenter, config: SegmentationConfig, train_set, val_set, run_dir: Path, log) -> list[dict]:
    model = segmenter.model
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    generator = torch.Generator().manual_seed(config.seed)
    history, best, step = [], -1.0, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        start, loss_sum, batches = time.perf_counter(), 0.0, 0
        order = torch.randperm(len(train_set), generator=generator)
        for first in range(0, len(order), config.batch_size):
            images, masks = _batch(train_set, order[first : first + config.batch_size], config, generator)
            lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))  # cosine to 0
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = normalize(images, IMAGENET_MEAN, IMAGENET_STD)
            if config.method == "sliding":
                patches, labels = sample_patches(x, masks, config.patches_per_image, config.patch_size, generator,
                                                 train_set.ignore_index)
                loss = F.cross_entropy(model(patches), labels)
            else:
                loss = model.loss(x.contiguous(memory_format=torch.channels_last), masks, train_set.ignore_index)
            if not torch.isfinite(loss):
                raise RuntimeError(f"non-finite loss {float(loss)} at step {step + 1} (epoch {epoch}); "
                                   "the last good checkpoint is kept; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum, batches, step = loss_sum + float(loss.detach()), batches + 1, step + 1
        seconds = time.perf_counter() - start
        validation = evaluate_segmenter(segmenter, val_set)
        record = {"epoch": epoch, "step": step, "lr": lr, "loss": loss_sum / max(1, batches), "train_seconds": seconds,
                  "val_mean_iou": validation["mean_iou"], "val_pixel_accuracy": validation["pixel_accuracy"],
                  "val_mean_class_accuracy": validation["mean_class_accuracy"]}
        history.append(record)
        improved = _sortable(record["val_mean_iou"]) > best
        if improved:
            best = _sortable(record["val_mean_iou"])
            _save(run_dir / "best.pt", config, segmenter, optimizer, epoch, step, history)
        _save(run_dir / "last.pt", config, segmenter, optimizer, epoch, step, history)
        with open(run_dir / "metrics.jsonl", "a") as lines:
            lines.write(json.dumps(record) + "\n")
        log(f"epoch {epoch}/{config.epochs}: loss {record['loss']:.3f}, val mean IoU {record['val_mean_iou']:.3f}, "
            f"pixel accuracy {record['val_pixel_accuracy']:.3f}{' (best)' if improved else ''}, {seconds:.0f} s")
    return history


def _batch(dataset: SegmentationDataset, indices: Tensor, config: SegmentationConfig, generator: torch.Generator
           ) -> tuple[Tensor, Tensor]:
    """Images ``(B, 3, S, S)`` and masks ``(B, S, S)``: random crops (padded with void where the
    image is smaller) when ``crop_size`` is set, random flips with ``flip``."""
    images, masks = [], []
    for index in indices.tolist():
        image, mask = dataset[index]
        if config.crop_size:
            image, mask = _random_crop(image, mask, config.crop_size, dataset.ignore_index, generator)
        if config.flip and torch.rand(1, generator=generator) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        images.append(image)
        masks.append(mask)
    sizes = {tuple(m.shape) for m in masks}
    if len(sizes) > 1:
        raise ValueError(f"{dataset.name}: training images differ in size ({', '.join(map(str, sorted(sizes)[:3]))}…); "
                         "pass a crop size (--crop-size 320)")
    return torch.stack(images), torch.stack(masks)


def _random_crop(image: Tensor, mask: Tensor, size: int, ignore_index: int, generator: torch.Generator):
    height, width = mask.shape
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h))
        mask = F.pad(mask, (0, pad_w, 0, pad_h), value=ignore_index)
        height, width = mask.shape
    top = int(torch.randint(height - size + 1, (1,), generator=generator))
    left = int(torch.randint(width - size + 1, (1,), generator=generator))
    return image[:, top : top + size, left : left + size], mask[top : top + size, left : left + size]


def _sortable(value: float) -> float:
    return -1.0 if value != value else value


def _save(path: Path, config, segmenter: Segmenter, optimizer, epoch: int, step: int, history: list) -> None:
    state = {"format": FORMAT, "config": dataclasses.asdict(config), "classes": segmenter.classes,
             "palette": [list(c) for c in segmenter.palette], "ignore_index": segmenter.ignore_index,
             "model": segmenter.model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "batch": 0, "step": step, "history": history}
    save_checkpoint(state, path, keep_previous=path.name == "last.pt")


def load_segmenter(path: str | os.PathLike) -> Segmenter:
    """A `Segmenter` from a run folder (its ``best.pt``) or a checkpoint of `train_segmenter`, read
    with ``weights_only=True``. Raises FileNotFoundError or ValueError naming the file."""
    state, _ = read_run_checkpoint(path, FORMAT, "segmentation")
    config = SegmentationConfig(**state["config"])
    model = build_model(config, len(state["classes"]))
    model.load_state_dict(state["model"])
    return Segmenter(model.eval(), config.method, list(state["classes"]), [tuple(c) for c in state["palette"]],
                     config.patch_size, int(state["ignore_index"]))
