"""Object detection as a task of the training engine (`cnnkit.train.task`): Faster R-CNN, Fast
R-CNN and R-CNN; Mask R-CNN's task (`cnnkit.detection.mask_task`) is this one plus masks.

    load_data    digit scenes or a COCO file split 80/10/10 (`cnnkit.detection.splits`); for Fast
                 R-CNN and R-CNN every image's selective-search proposals, computed once
    build_model  the method's detector, started from another run's layers of the same name and
                 shape (``init_from``) or from a backbone pre-trained on single digits
    batches      lists of images (3, H, W) and targets, whose sizes and box counts differ
    prepare      random rescale and crop keeping the boxes right (Faster R-CNN, ``augment``),
                 drawn from torch's generator, which the engine seeds per step; images and
                 targets to ``step.device``
    losses       the detector's own ``loss(images, targets)``: the RPN's and the RoI heads'
                 terms; R-CNN's fine-tuning cross-entropy on warped regions
    evaluate     COCO mAP (best.pt by validation mAP), VOC AP@0.5 and the validation loss,
                 under DDP equal to one process's evaluation of the same weights
    finish       R-CNN: its linear SVMs and box regressors, fitted in closed form on the best CNN

`train(DetectionConfig())` trains Faster R-CNN on digit scenes with the engine's devices, AMP,
DDP, periodic checkpoints, early stopping and exact resume.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from cnnkit.detection.augment import box_augmentation
from cnnkit.detection.backbones import BACKBONES
from cnnkit.detection.checkpoints import DETECTION, METHODS, build_detector, read_detector_checkpoint
from cnnkit.data.detection import DetectionDataset, collate
from cnnkit.detection.evaluation import batch_of, detection_figures, predict_batches
from cnnkit.detection.proposals import SelectiveSearch, attach_proposals
from cnnkit.detection.rcnn import RCNN
from cnnkit.detection.splits import DetectionSplits, load_splits
from cnnkit.train.batches import batch_count, derived_seed
from cnnkit.train.config import RunConfig
from cnnkit.train.distributed import current_processes, evaluation_positions, gather_in_order
from cnnkit.train.task import Step


@dataclass
class DetectorConfig(RunConfig):
    """What every detector run shares, Mask R-CNN's included: the data, the network's input and
    the recipe's defaults (8 epochs of 8 images, SGD at 0.02 with momentum 0.9, weight decay
    1e-4, 50 warm-up steps, × 0.1 at 2/3 and 8/9 of the epochs, early stopping after 3 epochs
    without a better validation figure). The engine's fields are `RunConfig`'s.

    data: "digit-scenes" (built in) or a COCO annotation JSON, whose images are read from
        image_dir (default: found beside it); lenient drops bad COCO annotations instead of failing.
    backbone: a `cnnkit.detection.backbones.build_backbone` name.
    train_images, val_images, test_images: digit scenes: how many of each split (None:
        600/100/200); a COCO file: at most this many of each split (None: all).
    min_size, max_size: the detector's resizing (short side, cap on the long side).
    workers: DataLoader workers reading a COCO file's images (digit scenes are in memory).
    """

    epochs: int = 8
    batch_size: int = 8
    lr: float = 0.02
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "step"
    warmup_steps: int = 50
    patience: int = 3
    data: str = "digit-scenes"
    image_dir: str | None = None
    lenient: bool = False
    backbone: str = "small"
    train_images: int | None = None
    val_images: int | None = None
    test_images: int | None = None
    min_size: int = 128
    max_size: int = 256

    def validate(self) -> None:
        super().validate()
        if self.data != "digit-scenes" and not self.data.endswith(".json"):
            raise ValueError(f"data must be digit-scenes or a COCO annotation JSON (.json), got {self.data!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        for name in ("train_images", "val_images", "test_images", "min_size", "max_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)!r}")

    def milestones(self) -> list[int]:
        """lr_milestones, or 2/3 and 8/9 of the epochs (at least 1): the detectors' step decay."""
        return list(self.lr_milestones) if self.lr_milestones else [max(1, self.epochs * 2 // 3),
                                                                     max(1, self.epochs * 8 // 9)]


@dataclass
class DetectionConfig(DetectorConfig):
    """What a detection run trains, on what, and how (the shared fields: `DetectorConfig`).

    method: faster-rcnn, fast-rcnn or rcnn. augment: random rescale and crop that keep boxes
    right (Faster R-CNN; Fast R-CNN and R-CNN keep their images, whose proposals are computed once).
    pretrain_steps: on digit scenes, steps of supervised pre-training of the backbone on single
    digits before detection training (`cnnkit.detection.pretrain`; 0: random weights).
    init_from: another detection run (folder or checkpoint) whose tensors of the same name and
    shape start this one (`initialise_from`), instead of pre-training.
    """

    method: str = "faster-rcnn"
    augment: bool = True
    pretrain_steps: int = 300
    init_from: str | None = None

    def validate(self) -> None:
        super().validate()
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.pretrain_steps < 0:
            raise ValueError(f"pretrain_steps must be ≥ 0, got {self.pretrain_steps!r}")

    def default_name(self) -> str:
        return f"{self.method}-{Path(self.data).stem}"

    def task(self) -> DetectionTask:
        return DetectionTask()


class DetectionTask:
    """Boxes and classes of objects, scored by COCO mAP (see the module)."""

    name = DETECTION
    config_class = DetectionConfig
    monitor = "map"
    recorded = ("loss", "map", "map50", "voc_map50")
    target_keys = ("boxes", "labels", "proposals")
    """What of a target the model reads (masks are not moved to the device, nor warped)."""
    find_unused_parameters = False

    def load_data(self, config: DetectionConfig) -> DetectionSplits:
        """The splits; for Fast R-CNN and R-CNN, with each training and validation image's
        selective-search proposals (the test split searches as it is predicted, so that its time
        per image counts the proposals, as a user's image would)."""
        self.config = config
        data = self.announced(load_splits(config))
        if config.method in ("fast-rcnn", "rcnn"):
            proposer = SelectiveSearch()  # the proposer of fast_rcnn() and rcnn()
            data = DetectionSplits(attach_proposals(data.train, proposer), attach_proposals(data.val, proposer), data.test)
            regions = sum(len(t["proposals"]) for t in data.train.targets) / max(1, len(data.train))
            self.say(f"selective search: {regions:.0f} regions per training image, computed once")
        self.augmentation = box_augmentation(flip=False) if config.augment and config.method == "faster-rcnn" else None
        return data

    def announced(self, data: DetectionSplits) -> DetectionSplits:
        """``data``, its sizes and categories said (and what a lenient read dropped)."""
        train = data.train
        self.say(f"data: {train.name}: {len(train)} train, {len(data.val)} val, {len(data.test)} test images; "
                 f"categories ({len(train.categories)}): {', '.join(train.categories)}")
        for problem in train.problems[:20]:
            self.say(f"  dropped/noted: {problem}")
        return data

    def build_model(self, config: DetectionConfig, data: DetectionSplits, initialise: bool = True) -> nn.Module:
        """The method's detector for the data's categories; with ``initialise``, started from
        ``init_from`` or (digit scenes) a backbone pre-trained on single digits."""
        model = build_detector(config.method, config.backbone, data.train.categories, config.min_size, config.max_size)
        if not initialise:
            return model
        if config.init_from:
            copied = initialise_from(model, config.init_from)
            self.say(f"initialised from {config.init_from}: {len(copied)} tensors "
                     f"({', '.join(sorted({name.split('.')[0] for name in copied}))})")
        elif config.pretrain_steps and config.data == "digit-scenes" and hasattr(model.backbone, "out_channels"):
            from cnnkit.detection.pretrain import pretrain_backbone

            pretrain_backbone(model.backbone, config.pretrain_steps, seed=config.seed, log=self.say)
        return model

    def batches(self, dataset: DetectionDataset, indices: Tensor, batch_size: int, config):
        """``(images, targets)`` lists of ``dataset[indices]``, ``batch_size`` at a time; the
        images of a COCO file are read by ``config.workers`` DataLoader workers."""
        yield from DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size, shuffle=False,
                              num_workers=config.workers if dataset.on_disk else 0, collate_fn=collate)

    def prepare(self, batch, step: Step) -> tuple[list[Tensor], list[dict]]:
        """The batch's `model_inputs`, augmented (when the method is) from torch's generator and
        moved to ``step.device``."""
        images, targets = self.model_inputs(batch)
        if self.augmentation is not None:
            images, targets = zip(*(self.augmentation(image, target) for image, target in zip(images, targets)))
        return on_device(images, targets, step.device)

    def model_inputs(self, batch) -> tuple[list[Tensor], list[dict]]:
        """The batch's images and its targets cut to `target_keys`."""
        images, targets = batch
        return images, [{key: target[key] for key in self.target_keys if key in target} for target in targets]

    def losses(self, model: nn.Module, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
        return model.loss(images, targets)

    def evaluate(self, model: nn.Module, dataset: DetectionDataset, data: DetectionSplits, config,
                 device: torch.device) -> dict:
        """`figures` of ``dataset`` and its mean loss ``loss``, over batches of ``batch_size``
        consecutive images (`cnnkit.detection.evaluation`). Under DDP process r predicts batches
        r, r+W, … and every process gets all of them back in order (`gather_in_order`), so the
        figures equal one process's evaluation of the same weights. The loss is ``model.loss`` in
        eval mode (batch statistics frozen), batch b's sampling seeded by (seed, b) inside
        `torch.random.fork_rng`: the same every epoch, and the run's own random stream untouched."""
        processes = current_processes(device)
        numbers = evaluation_positions(batch_count(len(dataset), config.batch_size), processes)
        found = predict_batches(model, dataset, numbers, config.batch_size, device)
        losses = self.validation_losses(model, dataset, numbers, config.batch_size, device, config.seed)
        batches = gather_in_order(list(zip(found, losses)), processes)
        total = sum(loss * len(predicted.detections) for predicted, loss in batches)
        return {**self.figures(dataset, [predicted for predicted, _ in batches]), "loss": total / max(1, len(dataset))}

    @torch.no_grad()
    def validation_losses(self, model: nn.Module, dataset: DetectionDataset, numbers, batch_size: int,
                          device: torch.device, seed: int) -> list[float]:
        """The summed loss terms of each batch in ``numbers`` (eval mode; see `evaluate`)."""
        model.eval()
        losses = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for number in numbers:
                torch.manual_seed(derived_seed(seed, number))
                images, targets = on_device(*self.model_inputs(batch_of(dataset, number, batch_size)), device)
                terms = model.loss(images, targets)
                losses.append(float(sum(value for key, value in terms.items() if key.startswith("loss"))))
        return losses

    def figures(self, dataset: DetectionDataset, batches) -> dict:
        return detection_figures(dataset, batches)

    def finish(self, model: nn.Module, data: DetectionSplits, config) -> None:
        """R-CNN's closed-form stages on the best fine-tuned CNN and the training split (its SVMs'
        negatives drawn with torch's generator seeded by the run's seed, inside `fork_rng`); the
        other detectors are finished by their gradient steps."""
        if not isinstance(model, RCNN):
            return
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)
            model.fit_svms_and_box_regressors(data.train, log=self.say)

    def state(self, data: DetectionSplits) -> dict:
        train = data.train
        return {"name": train.name, "categories": list(train.categories), "category_ids": list(train.category_ids)}

    def describe(self, data: DetectionSplits) -> dict:
        splits = data._asdict()
        return {"name": self.config.data, "categories": list(data.train.categories),
                "sizes": {split: len(part) for split, part in splits.items()},
                "image_ids": {split: [int(i) for i in part.image_ids] for split, part in splits.items()}}

    def summary(self, metrics: dict) -> str:
        return (f"mAP {metrics['map']:.3f} (0.5:0.95), mAP@0.5 {metrics['map50']:.3f}, VOC mAP@0.5 "
                f"{metrics['voc_map50']:.3f}, loss {metrics['loss']:.3f} on {metrics['images']} images")

    def report(self, data: DetectionSplits, test: dict) -> dict:
        return {"voc_ap50": test["voc_ap50"], "problems": list(data.train.problems)}

    def markdown(self, report: dict) -> list[str]:
        lines = ["## Test VOC AP@0.5 per class (–: no such object in the test images)", "", "| class | AP@0.5 |",
                 "|---|---|"]
        lines += [f"| {name} | {'–' if math.isnan(ap) else f'{ap:.3f}'} |" for name, ap in report["voc_ap50"].items()]
        return lines + problem_lines(report)


def on_device(images, targets, device: torch.device) -> tuple[list[Tensor], list[dict]]:
    """Images and every tensor of the targets on ``device``."""
    return ([image.to(device, non_blocking=True) for image in images],
            [{key: value.to(device, non_blocking=True) for key, value in target.items()} for target in targets])


def problem_lines(report: dict) -> list[str]:
    """report.md's list of the annotations a lenient read dropped (and images noted)."""
    return ["", "## Dropped or noted annotations", ""] + ([f"- {line}" for line in report["problems"]] or ["none"])


def initialise_from(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Copy into ``model`` every tensor of another detection run's checkpoint (a run folder or its
    ``best.pt``) with the same name and shape, names compared without ``roi_heads.``: R-CNN keeps
    its fc6-fc7 ``box_head`` at the top level, Fast and Faster R-CNN inside ``roi_heads``. So
    R-CNN → Fast R-CNN shares the backbone and fc6-fc7, Fast → Faster R-CNN everything but the
    RPN (the papers' shared convolutional layers). Returns the model's names copied; raises
    ValueError when the categories differ or nothing matches."""
    checkpoint = read_detector_checkpoint(path, DETECTION)
    if checkpoint.categories != list(model.categories):
        raise ValueError(f"{checkpoint.path}: trained on categories {checkpoint.categories}, this model has "
                         f"{model.categories}; initialise from a run on the same categories")
    theirs = {name.removeprefix("roi_heads."): tensor for name, tensor in checkpoint.weights.items()}
    copied = {name: theirs[name.removeprefix("roi_heads.")] for name, tensor in model.state_dict().items()
              if getattr(theirs.get(name.removeprefix("roi_heads.")), "shape", None) == tensor.shape}
    if not copied:
        raise ValueError(f"{checkpoint.path}: no tensor matches this {type(model).__name__} by name and shape "
                         "(is the backbone the same?)")
    model.load_state_dict(copied, strict=False)
    return sorted(copied)
