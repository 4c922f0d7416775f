"""Stage 7: segmentation. An FCN-8s labels every pixel of generated digit scenes (semantic
segmentation, per-class IoU and mean IoU), and a Mask R-CNN finds each digit and its mask on the
same scenes (instance segmentation, mask AP and mean mask IoU)."""

from __future__ import annotations

import math

import numpy as np
import torch

from cnnkit.data.detection import DetectionDataset
from cnnkit.detection.instance_predict import draw_instances, load_mask_rcnn
from cnnkit.detection.mask_rcnn import binary_masks
from cnnkit.detection.mask_task import MaskRCNNConfig, MaskRCNNTask
from cnnkit.data.scenes import digit_scenes
from cnnkit.detection.splits import DetectionSplits
from cnnkit.detection.structures import Detections
from cnnkit.figures import pyplot
from cnnkit.segmentation import digit_scene_segmentation, load_segmenter
from cnnkit.segmentation.task import SegmentationConfig
from cnnkit.segmentation.metrics import score_text
from cnnkit.segmentation.predict import colour_mask
from cnnkit.tour.section import Section, TourContext
from cnnkit.train import train

CANVAS = 64  # the segmentation scenes: 64×64, 1-3 digits of 14-30 pixels


def fcn_config(context: TourContext) -> SegmentationConfig:
    """FCN-8s (ResNet-18, from scratch): quick 3 epochs of 500 scenes, full the library's default 8 of 1000."""
    size = dict(train_images=500, epochs=3, batch_size=8, lr=5e-3) if context.quick else {}
    return SegmentationConfig(val_images=10, test_images=50 if context.quick else 100, seed=context.seed,
                              runs_dir=str(context.runs_dir), name="fcn-digit-scenes", checkpoint_every_seconds=0.0,
                              **size)


def instance_scenes(split: str, count: int, seed: int) -> DetectionDataset:
    """The segmentation scenes with their instance targets, every digit labelled one class, "digit"
    (the same images as `digit_scene_segmentation` for the same split, count and seed)."""
    scenes = digit_scenes(split, count, canvas=CANVAS, min_size=14, max_size=30, max_digits=3, seed=seed)
    targets = [{**target, "labels": torch.ones_like(target["labels"])} for target in scenes.targets]
    return DetectionDataset(list(scenes.images), targets, ["digit"], name=f"{scenes.name} (digit)")


class OneClassScenes(MaskRCNNTask):
    """Mask R-CNN's task on the segmentation scenes with every digit one class (`instance_scenes`)."""

    def splits(self, config: MaskRCNNConfig) -> DetectionSplits:
        counts = (config.train_images, config.val_images, config.test_images)
        return DetectionSplits(*(instance_scenes(split, count, config.seed)
                                 for split, count in zip(DetectionSplits._fields, counts)))


def mask_rcnn_config(context: TourContext, steps: int) -> MaskRCNNConfig:
    """One pass of SGD (momentum 0.9, 10 steps of linear warm-up, then constant 0.02) over
    ``steps`` batches of 4 scenes, on the five Mask R-CNN losses summed,
    L = L_rpn_cls + L_rpn_box + L_cls + L_box + L_mask, with the small stride-8 backbone."""
    return MaskRCNNConfig(epochs=1, batch_size=4, lr=0.02, warmup_steps=10, schedule="constant", patience=0,
                          train_images=4 * steps, val_images=10, test_images=30 if context.quick else 100,
                          min_size=CANVAS, max_size=2 * CANVAS, seed=context.seed, runs_dir=str(context.runs_dir),
                          name="mask-rcnn-digit", checkpoint_every_seconds=0.0)


def mean_mask_iou(dataset: DetectionDataset, detections: list, score_threshold: float = 0.5) -> float:
    """Mean over the ground-truth instances of the best IoU |P ∩ G| / |P ∪ G| with any predicted
    mask (probability ≥ 0.5) of score ≥ ``score_threshold``; a missed instance counts 0."""
    ious = []
    for target, found in zip(dataset.targets, detections):
        truth = target["masks"].flatten(1).float()  # (G, H·W)
        predicted = binary_masks(found.above(score_threshold)).flatten(1).float()  # (R, H·W)
        if len(predicted) == 0:
            ious.extend([0.0] * len(truth))
            continue
        intersection = truth @ predicted.T  # (G, R)
        union = truth.sum(1, keepdim=True) + predicted.sum(1) - intersection
        ious.extend((intersection / union.clamp(min=1)).max(1).values.tolist())
    return sum(ious) / max(1, len(ious))


def run(section: Section, context: TourContext) -> None:
    section.say(
        "Segmentation asks for a label at every pixel. Semantic segmentation names each pixel's class "
        "(these pixels are a 7, those background) and does not tell two objects of one class apart; "
        "instance segmentation finds each object and its own mask. Classifying the patch around every "
        "pixel works but repeats the same convolutions for each of the H·W overlapping patches."
    )
    config = fcn_config(context)
    result = train(config, progress=False)
    segmenter = load_segmenter(result.run_dir)
    test, train_seconds = result.test, result.report["timing"]["train_seconds"]
    semantic = digit_scene_segmentation("test", config.test_images, seed=context.seed)
    chance = test["iou"]["background"] / len(semantic.classes)  # everything called background
    section.say(
        "A fully convolutional network (Long, Shelhamer & Darrell 2015) runs the classifier's convolutional "
        "trunk once over the whole image, scores the classes with 1×1 convolutions on the stride-32 grid and "
        "upsamples the scores with learned transposed convolutions (initialised to bilinear interpolation). "
        "FCN-8s adds skips: the scores of the stride-16 and stride-8 stages are added on the way up, so fine "
        f"detail returns. Trained from scratch on {config.train_images or 1000} generated 64×64 digit scenes "
        f"for {config.epochs} epochs ({train_seconds:.0f} s), the `FCN-8s` on ResNet-18 reaches a test "
        f"mean IoU of {test['mean_iou']:.3f} over the 11 classes (pixel accuracy {test['pixel_accuracy']:.3f}, "
        f"which background alone would make {_background_share(semantic):.3f}); "
        f"calling everything background would give a mean IoU of {chance:.3f}."
    )
    _fcn_figure(section, segmenter, semantic)
    _iou_figure(section, result.history, test)
    section.table(
        f"FCN-8s on {test['images']} test scenes: intersection over union per class, |P ∩ G| / |P ∪ G| over all pixels",
        ["class", "IoU", "class accuracy (recall)"],
        [[name, score_text(iou), score_text(test["class_accuracy"][name])] for name, iou in test["iou"].items()]
        + [["mean", score_text(test["mean_iou"]), score_text(test["mean_class_accuracy"])]],
    )
    section.metrics.update(fcn_mean_iou=test["mean_iou"], fcn_pixel_accuracy=test["pixel_accuracy"],
                           fcn_background_iou=test["iou"]["background"], fcn_chance_mean_iou=chance,
                           fcn_train_seconds=train_seconds)
    section.command(f"cnnkit segment train --epochs {config.epochs} --train-images {config.train_images or 1000} "
                    f"--batch-size {config.batch_size} --lr {config.lr} --val-images {config.val_images} "
                    f"--test-images {config.test_images} --seed {config.seed} --name fcn-digit-scenes")
    section.command("cnnkit segment evaluate runs/fcn-digit-scenes")

    steps = 50 if context.quick else 200
    config = mask_rcnn_config(context, steps)
    scores = train(config, task=OneClassScenes(), progress=False).test
    model = load_mask_rcnn(context.runs_dir / config.name)
    instances = instance_scenes("test", config.test_images, context.seed)
    detections = [model.predict([image])[0] for image in instances.images]
    mask_iou = mean_mask_iou(instances, detections)
    section.say(
        "Mask R-CNN (He et al. 2017) is Faster R-CNN plus a mask branch: the region proposal network and the "
        "box head find and classify each object as in stage 6, and for every detected box a small FCN on the "
        "box's RoIAlign features predicts a 28×28 mask, which is pasted back into the image. The loss is "
        "Faster R-CNN's plus a per-pixel binary cross-entropy on the mask of the box's class. "
        f"Trained for {steps} steps of 4 scenes to find every digit as one class, \"digit\" (telling the ten "
        f"apart as well takes minutes longer), it reaches a mask AP@0.5 of {scores['mask_map50']:.3f} "
        f"(COCO mask AP over IoU 0.5:0.95 {scores['mask_map']:.3f}, box AP@0.5 {scores['box_map50']:.3f}) on "
        f"{len(instances)} test scenes; each true digit's best predicted mask overlaps it with a mean IoU of "
        f"{mask_iou:.3f}. Thin strokes in a 28×28 mask make the strict IoU thresholds hard."
    )
    _instance_figure(section, semantic, segmenter, instances, detections, model.categories)
    section.table(
        f"Mask R-CNN (one class, \"digit\") on {len(instances)} test scenes: COCO figures for masks and for boxes",
        ["", "AP 0.5:0.95", "AP@0.5", "AP@0.75"],
        [["masks", score_text(scores["mask_map"]), score_text(scores["mask_map50"]), score_text(scores["mask_map75"])],
         ["boxes", score_text(scores["box_map"]), score_text(scores["box_map50"]), score_text(scores["box_map75"])]],
    )
    section.metrics.update(mask_ap=scores["mask_map"], mask_ap50=scores["mask_map50"], box_ap50=scores["box_map50"],
                           mean_mask_iou=mask_iou, mask_rcnn_steps=steps)
    section.say(
        "`cnnkit segment train --method mask-rcnn` trains the ten-class Mask R-CNN on 128×128 digit scenes with "
        "its full recipe (minutes), and `cnnkit segment predict` draws the instances of a trained run on image files."
    )
    section.command("cnnkit segment train --method mask-rcnn --epochs 2 --train-images 200 --name mask-rcnn-digit-scenes")
    section.command("cnnkit segment evaluate runs/mask-rcnn-digit-scenes")


def _background_share(dataset) -> float:
    masks = torch.stack([dataset.mask(i) for i in range(len(dataset))])
    return float((masks == 0).float().mean())


def _fcn_figure(section: Section, segmenter, dataset, count: int = 5) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(3, count, figsize=(2 * count, 6.4))
    for column in range(count):
        image, truth = dataset[column]
        predicted = segmenter.predict([image])[0]
        for row, (picture, title) in enumerate(((image.permute(1, 2, 0).numpy(), "scene"),
                                                (colour_mask(truth, dataset.palette), "ground truth"),
                                                (colour_mask(predicted, dataset.palette), "FCN-8s"))):
            axes[row, column].imshow(picture, interpolation="nearest")
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
            if column == 0:
                axes[row, column].set_ylabel(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(dataset.palette[k]) / 255) for k in range(1, 11)]
    figure.legend(handles, dataset.classes[1:], loc="lower center", ncol=10, title="class colours (background black)",
                  fontsize=8, title_fontsize=8)
    figure.suptitle("FCN-8s: a class for every pixel of unseen test scenes")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(section.figure("fcn-predictions", "Test scenes, their true class per pixel and the FCN-8s "
                                  "prediction (colours as in the legend)"), dpi=100)
    plt.close(figure)


def _enlarged(image, detections: Detections, factor: int = 4) -> tuple:
    """The image and its detections ``factor`` times larger (nearest pixel), so labels fit beside the digits."""
    def enlarge(x):  # (..., H, W) → (..., factor·H, factor·W)
        return x.repeat_interleave(factor, -2).repeat_interleave(factor, -1)

    return enlarge(image), Detections(detections.boxes * factor, detections.scores,
                                                       detections.labels, enlarge(detections.masks))


def _iou_figure(section: Section, history: list[dict], test: dict) -> None:
    plt = pyplot()
    figure, (curve, bars) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1, 2]})
    epochs = [record["epoch"] + 1 for record in history]
    curve.plot(epochs, [record["val_mean_iou"] for record in history], "o-", label="validation mean IoU")
    curve.plot(epochs, [record["train_loss"] for record in history], "s--", label="training loss")
    curve.set_xlabel("epoch")
    curve.set_title("Training")
    curve.legend(fontsize=8)
    names = ["bg" if name == "background" else name for name in test["iou"]]
    values = [0.0 if math.isnan(v) else v for v in test["iou"].values()]
    bars.bar(names, values, color="tab:blue")
    bars.axhline(test["mean_iou"], color="tab:red", linestyle="--", label=f"mean IoU {test['mean_iou']:.3f}")
    bars.set_ylim(0, 1)
    bars.set_xlabel("class (bg: background; digits 0-9)")
    bars.set_title("Test IoU per class")
    bars.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(section.figure("fcn-iou", "Validation mean IoU and training loss per epoch; test IoU per class "
                                  "(background is easy, each digit must be recognised)"), dpi=100)
    plt.close(figure)


def _instance_figure(section: Section, semantic, segmenter, instances, detections, categories, count: int = 4) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(3, count, figsize=(2.4 * count, 7.4))
    for column in range(count):
        image = instances.images[column]
        truth = instances.targets[column]["masks"]
        true_instances = torch.zeros(truth.shape[-2:], dtype=torch.int64)
        for number, mask in enumerate(truth, start=1):
            true_instances[mask] = number
        pictures = (
            (colour_mask(true_instances, [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25)]), "true instances"),
            (colour_mask(segmenter.predict([image])[0], semantic.palette), "FCN-8s (semantic)"),
            (draw_instances(*_enlarged(image, detections[column].above(0.5)), categories).permute(1, 2, 0).numpy(),
             "Mask R-CNN (instances)"),
        )
        for row, (picture, title) in enumerate(pictures):
            axes[row, column].imshow(picture, interpolation="nearest")
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
            if column == 0:
                axes[row, column].set_ylabel(title)
    figure.suptitle("The same scenes: one colour per class (FCN) against one mask per object (Mask R-CNN)")
    figure.tight_layout()
    figure.savefig(section.figure("instances", "True instances; the FCN's classes per pixel; Mask R-CNN's detections "
                                  "(score ≥ 0.5) with their masks filled, outlined and boxed"), dpi=100)
    plt.close(figure)
