"""Semantic segmentation as a task of the training engine (`cnnkit.train.task`): FCN and the
sliding-window classifier.

    load_data   the run's splits (`run_splits`: digit scenes, CamVid or VOC folders, COCO class masks)
    batches     lists of images (3, H, W) and masks (H, W), whose sizes may differ
    prepare     random crops and flips (drawn from the step's generator), the batch stacked,
                moved to the device and normalised with the ImageNet statistics; for the sliding
                window, the patches around random non-void pixels
    losses      cross-entropy over the non-void pixels (FCN) or the patches' centre pixels (sliding)
    evaluate    `evaluate_segmenter`; the best checkpoint is the one of the highest validation mean IoU

`train(SegmentationConfig())` trains FCN-8s (ResNet-18) on digit scenes with the engine's
devices, AMP, DDP, periodic checkpoints and exact resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from cnnkit.data.transforms import normalize
from cnnkit.data.masks import SegmentationDataset, SegmentationSplits, run_splits
from cnnkit.segmentation.fcn import FCN, IMAGENET_MEAN, IMAGENET_STD
from cnnkit.segmentation.metrics import score_text
from cnnkit.segmentation.segmenter import METHODS, TASK, Segmenter, evaluate_segmenter, segmentation_model
from cnnkit.segmentation.sliding import sample_patches
from cnnkit.train.config import RunConfig
from cnnkit.train.task import Step


@dataclass
class SegmentationConfig(RunConfig):
    """What a segmentation run trains, on what, and how. The engine's fields are `RunConfig`'s,
    with segmentation's defaults: 8 epochs of 16 images, AdamW at 2e-3 with weight decay 1e-4, cosine.

    method: "fcn" or "sliding". data: "digit-scenes" (built in), a CamVid or VOC folder, or a
    COCO annotation JSON (`load_segmentation_data`); image_dir: the images of a COCO file;
    lenient: drop bad COCO annotations instead of failing.
    variant, backbone: FCN-32s/16s/8s on a cnnkit ResNet. patch_size, patches_per_image: the
    sliding-window classifier's patch and the pixels sampled per training image.
    crop_size: random square training crops (needed when images differ in size); flip: random
    horizontal flips. train_images, val_images, test_images: the first that many of a split
    (None: all; digit scenes 1000, 50 and 100; the sliding window validates on 10).
    """

    epochs: int = 8
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    method: str = "fcn"
    data: str = "digit-scenes"
    image_dir: str | None = None
    variant: str = "8s"
    backbone: str = "resnet18"
    patch_size: int = 25
    patches_per_image: int = 64
    crop_size: int | None = None
    flip: bool = False
    train_images: int | None = None
    val_images: int | None = None
    test_images: int | None = None
    lenient: bool = False

    def validate(self) -> None:
        super().validate()
        for name, allowed in (("method", METHODS), ("variant", FCN.VARIANTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.patch_size < 5 or self.patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd and ≥ 5 (a centre pixel), got {self.patch_size!r}")
        for name in ("patches_per_image", "crop_size", "train_images", "val_images", "test_images"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)!r}")

    def default_name(self) -> str:
        return f"{self.method}-{Path(self.data).stem}"

    def task(self) -> SegmentationTask:
        return SegmentationTask()


class SegmentationTask:
    """FCN or the sliding-window classifier on images with a class per pixel, scored by mean IoU."""

    name = TASK
    config_class = SegmentationConfig
    monitor = "mean_iou"
    recorded = ("mean_iou", "pixel_accuracy", "mean_class_accuracy")

    def load_data(self, config: SegmentationConfig) -> SegmentationSplits:
        self.config = config
        data = run_splits(config.to_dict())
        self.ignore_index = data.train.ignore_index
        self.say(f"data: {config.data}: {len(data.train)} train, {len(data.val)} val, {len(data.test)} test images; "
                 f"classes ({data.train.num_classes}): {', '.join(data.train.classes)}")
        return data

    def build_model(self, config: SegmentationConfig, data: SegmentationSplits, initialise: bool = True) -> nn.Module:
        return segmentation_model(config.method, data.train.num_classes, config.variant, config.backbone,
                                  config.patch_size)

    def batches(self, dataset: SegmentationDataset, indices: Tensor, batch_size: int, config):
        """``(images, masks)`` lists of ``dataset[indices]``, ``batch_size`` at a time; image files
        are read by ``config.workers`` DataLoader workers."""
        yield from DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size, shuffle=False,
                              num_workers=config.workers if dataset.on_disk else 0, collate_fn=_as_lists)

    def prepare(self, batch, step: Step) -> tuple[Tensor, Tensor]:
        """Images → ``(B, 3, S, S)`` normalised with the ImageNet mean and std, on ``step.device``,
        and masks ``(B, S, S)``: crops of ``crop_size`` at random positions (void where the image
        is smaller) and random horizontal flips (``flip``), drawn from ``step.generator``. The
        sliding window gets the patches ``(M, 3, P, P)`` around ``patches_per_image`` random
        non-void pixels of each image and their classes ``(M,)``."""
        config, generator, ignore_index = step.config, step.generator, self.ignore_index
        images, masks = [], []
        for image, mask in zip(*batch):
            if config.crop_size:
                image, mask = random_crop(image, mask, config.crop_size, ignore_index, generator)
            if config.flip and torch.rand(1, generator=generator) < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
            images.append(image)
            masks.append(mask)
        sizes = sorted({tuple(mask.shape) for mask in masks})
        if len(sizes) > 1:
            raise ValueError(f"{step.data.train.name}: training images differ in size ({', '.join(map(str, sizes[:3]))}…); "
                             "pass a crop size (--crop-size 320)")
        x = normalize(torch.stack(images).to(step.device, non_blocking=True), IMAGENET_MEAN, IMAGENET_STD)
        masks = torch.stack(masks).to(step.device, non_blocking=True)
        if config.method == "sliding":
            return sample_patches(x, masks, config.patches_per_image, config.patch_size, generator, ignore_index)
        return x.contiguous(memory_format=torch.channels_last), masks

    def losses(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """The mean cross-entropy of the non-void pixels (FCN) or of the patches' centre pixels (sliding)."""
        return {"loss": model.loss(inputs, targets, self.ignore_index)}

    def evaluate(self, model: nn.Module, dataset: SegmentationDataset, data: SegmentationSplits, config,
                 device: torch.device) -> dict:
        segmenter = Segmenter(model, config.method, list(data.train.classes), data.train.palette, config.patch_size,
                              self.ignore_index)
        return evaluate_segmenter(segmenter, dataset, device)

    def state(self, data: SegmentationSplits) -> dict:
        train = data.train
        return {"classes": list(train.classes), "palette": [list(c) for c in train.palette],
                "ignore_index": train.ignore_index, "method": self.config.method, "patch_size": self.config.patch_size}

    def describe(self, data: SegmentationSplits) -> dict:
        """The data's name, classes and split sizes, and the files of each split (not for generated scenes)."""
        splits = data._asdict()
        files = {split: [str(image) for image in part.images] for split, part in splits.items()}
        return {"name": self.config.data, "classes": list(data.train.classes),
                "sizes": {split: len(part) for split, part in splits.items()},
                **({"files": files} if data.train.on_disk else {})}

    def summary(self, metrics: dict) -> str:
        return (f"mean IoU {metrics['mean_iou']:.3f}, pixel accuracy {metrics['pixel_accuracy']:.3f}, "
                f"mean class accuracy {metrics['mean_class_accuracy']:.3f} on {metrics['images']} images")

    def report(self, data: SegmentationSplits, test: dict) -> dict:
        return {"iou": test["iou"], "class_accuracy": test["class_accuracy"], "confusion_matrix": test["confusion"]}

    def markdown(self, report: dict) -> list[str]:
        lines = ["## Test IoU per class", "", "| class | IoU | accuracy (recall) |", "|---|---|---|"]
        lines += [f"| {name} | {score_text(iou)} | {score_text(report['class_accuracy'][name])} |"
                  for name, iou in report["iou"].items()]
        return lines + ["", "The confusion matrix (pixels; rows: true class) is in report.json."]


def random_crop(image: Tensor, mask: Tensor, size: int, ignore_index: int, generator: torch.Generator
                ) -> tuple[Tensor, Tensor]:
    """A ``size`` × ``size`` crop of ``image (3, H, W)`` and ``mask (H, W)`` at a random position;
    an image smaller than ``size`` is first padded (pixels 0, mask void) at its bottom and right."""
    height, width = mask.shape
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h))
        mask = F.pad(mask, (0, pad_w, 0, pad_h), value=ignore_index)
        height, width = mask.shape
    top = int(torch.randint(height - size + 1, (1,), generator=generator))
    left = int(torch.randint(width - size + 1, (1,), generator=generator))
    return image[:, top : top + size, left : left + size], mask[top : top + size, left : left + size]


def _as_lists(samples: list[tuple[Tensor, Tensor]]) -> tuple[list[Tensor], list[Tensor]]:
    images, masks = zip(*samples)
    return list(images), list(masks)
