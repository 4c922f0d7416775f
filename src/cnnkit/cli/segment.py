"""Commands on semantic segmentation: ``segment train``, ``segment evaluate`` and ``segment predict``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

from cnnkit.cli.output import print_result
from cnnkit.cli.runs import add_device_option, add_evaluate_command, add_train_options
from cnnkit.cli.train import RUN_HELPS, add_config_options, given_options, train_or_resume

TRAIN_EXAMPLES = """\
examples:
  cnnkit segment train                                  # FCN-8s (ResNet-18) on built-in digit scenes, minutes
  cnnkit segment train --method sliding --epochs 4      # the baseline: a patch classifier at every pixel
  cnnkit segment train --variant 32s --backbone resnet34
  cnnkit segment train --data ../shared/data/camvid-sample --epochs 20 --batch-size 4 --crop-size 224 --flip
  cnnkit segment train --data coco/annotations/instances_train.json --crop-size 320 --lenient
  cnnkit segment train --method mask-rcnn              # instance masks on digit scenes (mask AP, box AP)
  cnnkit segment train --method mask-rcnn --data coco/annotations/instances_train.json --lenient
  cnnkit segment train --device cuda --amp --batch-size 64  # on a GPU, in mixed precision
  cnnkit segment train --resume runs/fcn-digit-scenes   # continue a run exactly where it stopped

--data is digit-scenes, a CamVid-style folder (train/ trainannot/ val/ valannot/), a Pascal VOC
folder (JPEGImages/ SegmentationClass/ ImageSets/) or a COCO annotation JSON (objects painted
as class masks); validation and test are always different images. A run folder runs/NAME/
keeps config.json, metrics.jsonl (validation mean IoU per epoch), best.pt (by validation mean
IoU), last.pt and report.md/report.json (test mean IoU, pixel and mean class accuracy,
per-class IoU, confusion matrix, time per image, the files of each split). The loss ignores
void pixels (label 255; CamVid's 11, VOC's 255). Mask R-CNN runs keep mask AP and box AP instead.
"""

EVALUATE_EXAMPLES = """\
examples:
  cnnkit segment evaluate runs/fcn-digit-scenes
  cnnkit segment evaluate runs/my-run --data ../shared/data/camvid-sample --split val --format json
"""

PREDICT_EXAMPLES = """\
examples:
  cnnkit segment predict runs/fcn-digit-scenes scene.png -o segmented/
  cnnkit segment predict fcn_resnet50_coco-1167a1af.pth photo.jpg -o out/
  cnnkit segment predict runs/mask-rcnn-digit-scenes scene.png -o instances/ --score 0.7
  cnnkit segment predict maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth photo.jpg -o instances/
Semantic: OUT/NAME_overlay.png (class colours blended in, legend of the classes present),
OUT/NAME_mask.png (palette PNG, pixel value = class index) and OUT/predictions.json.
Mask R-CNN: OUT/NAME_instances.png (outlined, labelled instance masks) and OUT/instances.json
(COCO results with RLE masks).
"""


HELPS = {
    "data": "digit-scenes, a CamVid or VOC folder, or a COCO JSON",
    "variant": "FCN skip architecture: 32s, 16s or 8s",
    "backbone": "FCN: a cnnkit ResNet, resnet18 … resnet152; Mask R-CNN: small, resnet18-fpn, …",
    "optimizer": "adamw or sgd", "patch_size": "sliding window: odd patch side",
    "patches_per_image": "sliding window: pixels sampled per training image", "flip": "random horizontal flips",
    "crop_size": "random square training crops (for images of different sizes)",
    "train_images": "training images (all; digit scenes: 1000)", "val_images": "validation images (all; digit scenes: 50)",
    "test_images": "test images (all; digit scenes: 100)",
    "lenient": "drop bad COCO annotations and list them instead of failing",
    "min_size": "Mask R-CNN: resize the short side to this", "max_size": "Mask R-CNN: cap on the long side",
}
"""The help of the config fields; where Mask R-CNN's default differs, its default is added."""


def _weakest(iou: dict) -> str:
    weakest = sorted((value, name) for name, value in iou.items() if not math.isnan(value))[:3]
    return ", ".join(f"{name} {value:.3f}" for value, name in weakest)


def _resumed_method(run: str) -> str:
    """The method in the config.json of the run folder ``run`` (a Mask R-CNN config names none)."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a run folder of cnnkit segment train)")
    return json.loads(path.read_text()).get("method", "mask-rcnn")


def _config_class(args):
    """MaskRCNNConfig for ``--method mask-rcnn`` or the resumed run of a Mask R-CNN (whose config
    names no method), else SegmentationConfig. Options of the other config only are refused."""
    from cnnkit.detection.mask_task import MaskRCNNConfig
    from cnnkit.segmentation.task import SegmentationConfig

    method = args.method or (_resumed_method(args.resume) if args.resume else "fcn")
    chosen, other = (MaskRCNNConfig, SegmentationConfig) if method == "mask-rcnn" else (SegmentationConfig, MaskRCNNConfig)
    known = {field.name for field in dataclasses.fields(chosen)} | {"method"}
    stray = ["--" + name.replace("_", "-") for name in given_options(args, other) if name not in known]
    if stray:
        raise ValueError(f"{', '.join(stray)}: not an option of --method {method}")
    return chosen


def train_command(args) -> int:
    result = train_or_resume(args, _config_class(args))
    report = result.report
    if not report:  # not process 0 of a distributed run: it writes and prints nothing
        return 0
    test, semantic = report["test"], "iou" in report  # else Mask R-CNN
    headline = (f"test mean IoU {test['mean_iou']:.3f}, pixel accuracy {test['pixel_accuracy']:.3f}; weakest classes: "
                f"{_weakest(report['iou'])}" if semantic else f"test mask AP {test['mask_map']:.3f}, mask AP@0.5 "
                f"{test['mask_map50']:.3f}, box AP {test['box_map']:.3f}")
    record = {"run": str(result.run_dir), "test": test, "best": result.best, **({"iou": report["iou"]} if semantic else {})}
    print_result(args, record, [f"{headline} ({test['images']} images)",
                                f"run folder {result.run_dir} (report.md, report.json, metrics.jsonl)"])
    return 0


def evaluate_command(args) -> int:
    from cnnkit.data.masks import run_splits
    from cnnkit.inference import open_model
    from cnnkit.segmentation import evaluate_segmenter
    from cnnkit.train.distributed import resolve_device

    opened = open_model(args.run)  # the file read once, whatever it holds
    if opened.task == "instance-segmentation" and opened.config is not None:
        return _evaluate_instances(args, opened.model, opened.config)
    if opened.task != "segmentation" or opened.config is None:
        raise ValueError(f"{args.run}: not a cnnkit segmentation or Mask R-CNN run or checkpoint")
    segmenter = opened.model
    config = segmenter.config  # the checkpoint's: its data
    if args.data:
        config = {"data": args.data, "image_dir": args.images, "lenient": args.lenient,
                  "method": segmenter.method, "seed": config.get("seed", 0)}
    dataset = getattr(run_splits(config), args.split)
    result = evaluate_segmenter(segmenter, dataset, resolve_device(args.device))
    print_result(args, result, [
        f"{dataset.name}: mean IoU {result['mean_iou']:.3f}, pixel accuracy {result['pixel_accuracy']:.3f}, "
        f"mean class accuracy {result['mean_class_accuracy']:.3f}",
        "IoU per class: " + ", ".join(f"{name} {iou:.3f}" for name, iou in result["iou"].items()),
        f"weakest classes: {_weakest(result['iou'])}",
        f"{1000 * result['seconds_per_image']:.1f} ms per image ({result['images']} images)",
    ])
    return 0


def _evaluate_instances(args, model, config: dict) -> int:
    from cnnkit.detection.instance_predict import evaluate_mask_rcnn
    from cnnkit.detection.mask_task import MaskRCNNConfig, load_instance_splits
    from cnnkit.train.distributed import resolve_device

    if args.data:
        from cnnkit.data.coco_masks import read_coco_instances

        dataset = read_coco_instances(args.data, args.images, strict=not args.lenient)
    else:
        dataset = load_instance_splits(MaskRCNNConfig.from_dict(config))[
            ("train", "val", "test").index(args.split)]
    result = evaluate_mask_rcnn(model, dataset, device=resolve_device(args.device))
    print_result(args, result, [
        f"{dataset.name}: mask AP {result['mask_map']:.3f} (0.5:0.95), mask AP@0.5 {result['mask_map50']:.3f}, "
        f"mask AP@0.75 {result['mask_map75']:.3f}",
        f"box AP {result['box_map']:.3f}, box AP@0.5 {result['box_map50']:.3f}",
        f"{1000 * result['seconds_per_image']:.1f} ms per image ({result['images']} images)",
    ])
    return 0


def _predict_instances(args, model) -> int:
    from cnnkit.detection.instance_predict import predict_instances

    records = predict_instances(model, args.images, args.output, args.score)
    if args.format == "json":
        print(json.dumps(records))
        return 0
    for path in args.images:
        found = [r for r in records if r["file_name"] == str(path)]
        print(f"{path}: " + (", ".join(f"{r['category']} {r['score']:.2f} at {[round(v) for v in r['bbox']]}"
                                        for r in found) or "nothing above the score threshold"))
    if args.output:
        print(f"wrote {args.output}/ (NAME_instances.png, instances.json with RLE masks)")
    return 0


def predict_command(args) -> int:
    from cnnkit.inference import open_model
    from cnnkit.segmentation.predict import predict_files
    from cnnkit.train.distributed import resolve_device

    for path in args.images:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such image file")
    opened = open_model(args.run)  # the file read once, whatever it holds
    if opened.task == "instance-segmentation":
        return _predict_instances(args, opened.model.to(resolve_device(args.device)))
    if opened.task != "segmentation":
        raise ValueError(f"{args.run} holds a {opened.task} model, not a segmenter")
    records = predict_files(opened.model, args.images, args.output, resolve_device(args.device))
    if args.format == "json":
        print(json.dumps(records))
        return 0
    for record in records:
        top = sorted(record["classes"].items(), key=lambda item: -item[1])[:4]
        print(f"{record['file_name']}: " + ", ".join(f"{name} {100 * share:.1f} %" for name, share in top))
    if args.output:
        print(f"wrote {args.output}/ (NAME_overlay.png, NAME_mask.png, predictions.json)")
    return 0


def add_train_command(commands, formatter) -> None:
    """``segment train``: the options of `SegmentationConfig` and, in a group of their own, those
    only `MaskRCNNConfig` has; ``--method`` decides which config a run gets."""
    from cnnkit.detection.mask_task import MaskRCNNConfig
    from cnnkit.segmentation.task import SegmentationConfig

    parser = commands.add_parser("train", help="train a segmenter (default: FCN-8s on digit scenes)",
                                 description="Train a segmenter, keep the best checkpoint by validation mean IoU "
                                 "(Mask R-CNN: mask AP); resume exactly after an interruption.",
                                 epilog=TRAIN_EXAMPLES, formatter_class=formatter)
    parser.add_argument("--method", choices=("fcn", "sliding", "mask-rcnn"),
                        help="fcn, the sliding-window baseline, or instance segmentation with Mask R-CNN "
                             "(digit scenes or a COCO JSON with masks) (default: fcn; with --resume: the run's)")
    parser.add_argument("--images", "--image-dir", dest="image_dir",
                        help="image folder of a COCO --data (default: found beside it)")
    segmentation = {field.name: field.default for field in dataclasses.fields(SegmentationConfig)}
    helps = {**RUN_HELPS, **HELPS}
    for field in dataclasses.fields(MaskRCNNConfig):
        if field.name in segmentation and field.default != segmentation[field.name]:
            helps[field.name] = f"{helps.get(field.name, '')}; Mask R-CNN default: {field.default}".lstrip("; ")
    add_train_options(parser, SegmentationConfig, helps, skip=("method", "image_dir"))
    add_config_options(parser, MaskRCNNConfig, helps, skip=tuple(segmentation))
    parser.set_defaults(func=train_command)


def add_commands(subparsers) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    group = subparsers.add_parser("segment", help="semantic segmentation: sliding window, FCN; Mask R-CNN",
                                  description="Train, evaluate and run segmentation models.")
    commands = group.add_subparsers(dest="segment_command", metavar="COMMAND", required=True)
    add_train_command(commands, formatter)
    add_evaluate_command(commands, "mean IoU, pixel and class accuracy of a trained segmenter",
                         "a dataset as for train (default: the run's own data)", EVALUATE_EXAMPLES, formatter,
                         evaluate_command)

    parser = commands.add_parser("predict", help="label every pixel of image files; overlays and mask PNGs",
                                 description="Run a segmenter on image files.", epilog=PREDICT_EXAMPLES,
                                 formatter_class=formatter)
    parser.add_argument("run", metavar="RUN|WEIGHTS",
                        help="a run folder, its best.pt, or fcn_resnet50 or maskrcnn_resnet50_fpn weights")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-o", "--output", help="folder for overlays, mask PNGs and predictions.json")
    parser.add_argument("--score", type=float, default=0.5,
                        help="Mask R-CNN: lowest score shown (default: %(default)s)")
    add_device_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=predict_command)
