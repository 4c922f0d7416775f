"""Commands on semantic segmentation: ``segment train``, ``segment evaluate`` and ``segment predict``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

from cnnkit.cli.output import print_result
from cnnkit.cli.runs import add_evaluate_command, add_run_folder_options

TRAIN_EXAMPLES = """\
examples:
  cnnkit segment train                                  # FCN-8s (ResNet-18) on built-in digit scenes, minutes
  cnnkit segment train --method sliding --epochs 4      # the baseline: a patch classifier at every pixel
  cnnkit segment train --variant 32s --backbone resnet34
  cnnkit segment train --data ../shared/data/camvid-sample --epochs 20 --batch-size 4 --crop-size 224 --flip
  cnnkit segment train --data coco/annotations/instances_train.json --crop-size 320 --lenient
  cnnkit segment train --method mask-rcnn              # instance masks on digit scenes (mask AP, box AP)
  cnnkit segment train --method mask-rcnn --data coco/annotations/instances_train.json --lenient

--data is digit-scenes, a CamVid-style folder (train/ trainannot/ val/ valannot/), a Pascal VOC
folder (JPEGImages/ SegmentationClass/ ImageSets/) or a COCO annotation JSON (objects painted
as class masks). A run folder runs/NAME/ keeps config.json, metrics.jsonl (validation mean IoU
per epoch), best.pt (by validation mean IoU), last.pt and report.json (test mean IoU, pixel and
mean class accuracy, per-class IoU, confusion matrix, time per image). The loss ignores void
pixels (label 255; CamVid's 11, VOC's 255).
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


def _weakest(result: dict) -> str:
    weakest = sorted((iou, name) for name, iou in result["iou"].items() if not math.isnan(iou))[:3]
    return ", ".join(f"{name} {iou:.3f}" for iou, name in weakest)


def _values(args, config_class) -> dict:
    """The options given on the command line (not None) that ``config_class`` has."""
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)
            if getattr(args, field.name, None) is not None}


def train_command(args) -> int:
    log = print if args.format == "text" else (lambda line: None)
    if args.method == "mask-rcnn":
        from cnnkit.detection.mask_training import MaskRCNNConfig, train_mask_rcnn

        report = train_mask_rcnn(MaskRCNNConfig(**_values(args, MaskRCNNConfig)), log=log)
        print_result(args, {"run": report["run_dir"], "test": report["test"], "best_epoch": report["best_epoch"]}, [
            f"run folder {report['run_dir']} (best epoch {report['best_epoch']}; report.json, metrics.jsonl)"])
        return 0
    from cnnkit.segmentation.training import SegmentationConfig, train_segmenter

    report = train_segmenter(SegmentationConfig(**_values(args, SegmentationConfig)), log=log)
    test = {key: value for key, value in report["test"].items() if key != "confusion"}
    print_result(args, {"run": report["run_dir"], "test": test, "best_epoch": report["best_epoch"]}, [
        f"weakest classes: {_weakest(test)}",
        f"run folder {report['run_dir']} (best epoch {report['best_epoch']}; report.json, metrics.jsonl)",
    ])
    return 0


def evaluate_command(args) -> int:
    from cnnkit.detection.mask_training import is_mask_rcnn_checkpoint

    if is_mask_rcnn_checkpoint(args.run):
        return _evaluate_instances(args)
    from cnnkit.segmentation.datasets import load_segmentation_data
    from cnnkit.segmentation.training import SegmentationConfig, evaluate_segmenter, load_segmenter

    segmenter = load_segmenter(args.run)
    run = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    if args.data:
        config = SegmentationConfig(data=args.data, image_dir=args.images, lenient=args.lenient)
    else:
        config = SegmentationConfig(**json.loads((run / "config.json").read_text()))
    splits = load_segmentation_data(config.data, config.image_dir, config.seed, config.train_images,
                                    config.val_images, config.test_images, config.lenient)
    dataset = splits[("train", "val", "test").index(args.split)]
    result = evaluate_segmenter(segmenter, dataset)
    print_result(args, result, [
        f"{dataset.name}: mean IoU {result['mean_iou']:.3f}, pixel accuracy {result['pixel_accuracy']:.3f}, "
        f"mean class accuracy {result['mean_class_accuracy']:.3f}",
        "IoU per class: " + ", ".join(f"{name} {iou:.3f}" for name, iou in result["iou"].items()),
        f"weakest classes: {_weakest(result)}",
        f"{1000 * result['seconds_per_image']:.1f} ms per image ({result['images']} images)",
    ])
    return 0


def _evaluate_instances(args) -> int:
    from cnnkit.detection.mask_training import MaskRCNNConfig, evaluate_mask_rcnn, load_instance_splits, load_mask_rcnn

    model = load_mask_rcnn(args.run)
    if args.data:
        from cnnkit.detection.coco_masks import read_coco_instances

        dataset = read_coco_instances(args.data, args.images, strict=not args.lenient)
    else:
        run = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
        config = MaskRCNNConfig(**json.loads((run / "config.json").read_text()))
        dataset = load_instance_splits(config)[("train", "val", "test").index(args.split)]
    result = evaluate_mask_rcnn(model, dataset)
    print_result(args, result, [
        f"{dataset.name}: mask AP {result['mask_map']:.3f} (0.5:0.95), mask AP@0.5 {result['mask_map50']:.3f}, "
        f"mask AP@0.75 {result['mask_map75']:.3f}",
        f"box AP {result['box_map']:.3f}, box AP@0.5 {result['box_map50']:.3f}",
        f"{1000 * result['seconds_per_image']:.1f} ms per image ({result['images']} images)",
    ])
    return 0


def _predict_instances(args) -> int:
    from cnnkit.detection.instance_predict import open_instance_segmenter, predict_instances

    records = predict_instances(open_instance_segmenter(args.run), args.images, args.output, args.score)
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
    from cnnkit.detection.instance_predict import is_instance_model
    from cnnkit.segmentation.predict import open_segmenter, predict_files

    for path in args.images:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such image file")
    if is_instance_model(args.run):
        return _predict_instances(args)
    segmenter = open_segmenter(args.run)
    records = predict_files(segmenter, args.images, args.output)
    if args.format == "json":
        print(json.dumps(records))
        return 0
    for record in records:
        top = sorted(record["classes"].items(), key=lambda item: -item[1])[:4]
        print(f"{record['file_name']}: " + ", ".join(f"{name} {100 * share:.1f} %" for name, share in top))
    if args.output:
        print(f"wrote {args.output}/ (NAME_overlay.png, NAME_mask.png, predictions.json)")
    return 0


def add_commands(subparsers) -> None:
    from cnnkit.segmentation.training import SegmentationConfig

    formatter = argparse.RawDescriptionHelpFormatter
    group = subparsers.add_parser("segment", help="semantic segmentation: sliding window, FCN",
                                  description="Train, evaluate and run semantic segmentation models.")
    commands = group.add_subparsers(dest="segment_command", metavar="COMMAND", required=True)
    defaults = SegmentationConfig()

    parser = commands.add_parser("train", help="train a segmenter (default: FCN-8s on digit scenes)",
                                 description="Train a segmenter, keep the best checkpoint by validation mean IoU.",
                                 epilog=TRAIN_EXAMPLES, formatter_class=formatter)
    parser.add_argument("--method", choices=("fcn", "sliding", "mask-rcnn"), default=defaults.method,
                        help="fcn, the sliding-window baseline, or instance segmentation with Mask R-CNN "
                             "(digit scenes or a COCO JSON with masks) (default: %(default)s)")
    parser.add_argument("--data", default=defaults.data,
                        help="digit-scenes, a CamVid or VOC folder, or a COCO JSON (default: %(default)s)")
    parser.add_argument("--images", dest="image_dir", help="image folder of a COCO --data (default: found beside it)")
    parser.add_argument("--variant", choices=("32s", "16s", "8s"), default=defaults.variant,
                        help="FCN skip architecture (default: %(default)s)")
    parser.add_argument("--backbone", help=f"FCN: a cnnkit ResNet, resnet18 … resnet152 (default: {defaults.backbone}); "
                        "Mask R-CNN: small, resnet18-fpn, … (default: small)")
    for name, kind, text in (("epochs", int, "passes over the training images"), ("batch_size", int, "images per step"),
                             ("lr", float, "peak learning rate (cosine to 0)"),
                             ("optimizer", str, "adamw or sgd (Mask R-CNN: SGD)"),
                             ("patch_size", int, "sliding window: odd patch side"),
                             ("patches_per_image", int, "sliding window: pixels sampled per training image"),
                             ("crop_size", int, "random square training crops (for images of different sizes)"),
                             ("train_images", int, "training images (all; digit scenes: 1000)"),
                             ("val_images", int, "validation images (all; digit scenes: 50)"),
                             ("test_images", int, "test images (all; digit scenes: 100)"),
                             ("threads", int, "torch threads (1 is often fastest on a busy shared CPU)"),
                             ("seed", int, "seed of data, splits and initialisation")):
        default = getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), type=kind,
                            help=f"{text} (default: {default}" + (")" if name in ("patch_size", "patches_per_image",
                                                                                    "crop_size", "val_images")
                                                                   else "; Mask R-CNN: its own)"))
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=defaults.flip,
                        help="random horizontal flips (default: %(default)s)")
    add_run_folder_options(parser, defaults.runs)
    parser.set_defaults(func=train_command)

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
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=predict_command)
