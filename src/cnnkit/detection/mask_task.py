"""Mask R-CNN as a task of the training engine: the detection task (`cnnkit.detection.task`)
with the masks kept in the targets, Mask R-CNN's five losses and COCO mask AP as the figure that
picks best.pt. Data: built-in digit scenes, whose targets carry each digit's mask, or a COCO
annotation JSON with polygon or RLE masks (`cnnkit.data.coco_masks.read_coco_instances`),
split 80/10/10 as detection's.

`train(MaskRCNNConfig())` trains a small Mask R-CNN on digit scenes; `resume(run,
task=MaskRCNNTask())` continues one exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cnnkit.detection.checkpoints import INSTANCES
from cnnkit.data.coco_masks import read_coco_instances
from cnnkit.detection.evaluation import instance_figures
from cnnkit.detection.mask_rcnn import mask_rcnn
from cnnkit.detection.splits import DetectionSplits, load_splits
from cnnkit.detection.task import DetectionTask, DetectorConfig, problem_lines


@dataclass
class MaskRCNNConfig(DetectorConfig):
    """What a Mask R-CNN run trains, on what, and how: `DetectorConfig`'s fields (data, network
    input, the recipe with early stopping; ``--optimizer adamw`` too), with 300/50/100 digit
    scenes for training, validation and test."""

    train_images: int | None = 300
    val_images: int | None = 50
    test_images: int | None = 100

    def default_name(self) -> str:
        return f"mask-rcnn-{Path(self.data).stem}"

    def task(self) -> MaskRCNNTask:
        return MaskRCNNTask()


def load_instance_splits(config: MaskRCNNConfig) -> DetectionSplits:
    """(train, val, test) with instance masks for ``config.data``."""
    return load_splits(config, read_coco_instances)


class MaskRCNNTask(DetectionTask):
    """Instance segmentation: boxes, classes and a mask per object, scored by COCO mask AP."""

    name = INSTANCES
    config_class = MaskRCNNConfig
    monitor = "mask_map"
    recorded = ("loss", "mask_map", "mask_map50", "box_map")
    target_keys = ("boxes", "labels", "masks")

    def load_data(self, config: MaskRCNNConfig) -> DetectionSplits:
        self.config, self.augmentation = config, None
        return self.announced(self.splits(config))

    def splits(self, config: MaskRCNNConfig) -> DetectionSplits:
        """The data's (train, val, test) with instance masks (`load_instance_splits`)."""
        return load_instance_splits(config)

    def build_model(self, config: MaskRCNNConfig, data: DetectionSplits, initialise: bool = True) -> nn.Module:
        return mask_rcnn(config.backbone, data.train.categories, min_size=config.min_size, max_size=config.max_size)

    def figures(self, dataset, batches) -> dict:
        return instance_figures(dataset, batches)

    def summary(self, metrics: dict) -> str:
        return (f"mask AP {metrics['mask_map']:.3f} (0.5:0.95), mask AP@0.5 {metrics['mask_map50']:.3f}, box AP "
                f"{metrics['box_map']:.3f}, loss {metrics['loss']:.3f} on {metrics['images']} images")

    def report(self, data: DetectionSplits, test: dict) -> dict:
        return {"problems": list(data.train.problems)}

    def markdown(self, report: dict) -> list[str]:
        return problem_lines(report)
