"""Commands on object detection: ``detect train``, ``detect evaluate`` and ``detect predict``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from cnnkit.cli.output import print_result
from cnnkit.cli.runs import add_device_option, add_evaluate_command, add_train_options
from cnnkit.cli.train import train_or_resume

TRAIN_EXAMPLES = """\
examples:
  cnnkit detect train                                   # Faster R-CNN on built-in digit scenes, a few minutes
  cnnkit detect train --method fast-rcnn --epochs 6     # selective search + RoI max pooling
  cnnkit detect train --method rcnn --train-images 150 --epochs 2  # warped regions, SVMs, box regression
  cnnkit detect train --init-from runs/fast-rcnn-digit-scenes  # Faster R-CNN: Fast R-CNN's layers plus an RPN
  cnnkit detect train --data coco/annotations/instances_train.json --images coco/train \\
      --backbone resnet18-c4 --min-size 512 --max-size 800 --lenient --device cuda --amp
  cnnkit detect train --resume runs/faster-rcnn-digit-scenes  # continue a run exactly where it stopped

A run folder runs/NAME/ keeps config.json, metrics.jsonl (training losses, validation loss and
mAP per epoch), best.pt (by validation mAP), last.pt and report.md/report.json (test COCO mAP,
VOC AP@0.5 per class, time per image, the images of each split). --data is digit-scenes or a
COCO annotation JSON, whose images are split 80/10/10 (seeded) into train, validation and
test; the dataset's categories are printed first. R-CNN's SVMs and box regressors are fitted
after its CNN's fine-tuning, on the best epoch's CNN. Every field of
cnnkit.detection.task.DetectionConfig is an option below.
"""

EVALUATE_EXAMPLES = """\
examples:
  cnnkit detect evaluate runs/faster-rcnn-digit-scenes
  cnnkit detect evaluate runs/my-run --data val/annotations.json --images val/ --format json
"""

PREDICT_EXAMPLES = """\
examples:
  cnnkit detect predict runs/faster-rcnn-digit-scenes scene.png -o detected/
  cnnkit detect predict fasterrcnn_resnet50_fpn_coco-258fb6c6.pth photo.jpg -o out/ --score 0.7 --device cuda
Writes OUT/NAME.png with labelled boxes and OUT/detections.json (COCO result format plus the
file name); --format json prints the records.
"""

HELPS = {
    "method": "faster-rcnn, fast-rcnn or rcnn",
    "data": "digit-scenes or a COCO annotation JSON",
    "backbone": "small, vgg16, resnet18-c4, resnet50-c4, resnet18-fpn or resnet50-fpn",
    "warmup_steps": "steps of linear learning-rate warm-up",
    "patience": "stop after this many epochs without a better validation mAP; 0: never",
    "train_images": "use only this many training images",
    "val_images": "validation images (digit scenes: 100)",
    "test_images": "test images (digit scenes: 200)",
    "min_size": "resize the short side to this",
    "max_size": "cap on the long side",
    "pretrain_steps": "digit scenes: pre-train the backbone on single digits for this many steps first; "
                      "0: from random weights",
    "init_from": "start from another detection run's weights of the same name and shape (R-CNN → Fast R-CNN: "
                 "backbone and fc6-fc7; Fast → Faster: all but the RPN) instead of pre-training",
    "augment": "random rescale and crop that keep boxes right (Faster R-CNN)",
    "lenient": "drop bad COCO annotations and list them instead of failing",
}


def train_command(args) -> int:
    from cnnkit.detection.task import DetectionConfig

    result = train_or_resume(args, DetectionConfig)
    if not result.report:  # not process 0 of a distributed run: it writes and prints nothing
        return 0
    test = result.report["test"]
    print_result(args, {"run": str(result.run_dir), "test": test, "best": result.best}, [
        f"test mAP {test['map']:.3f} (0.5:0.95), mAP@0.5 {test['map50']:.3f}, VOC mAP@0.5 {test['voc_map50']:.3f}, "
        f"{1000 * test['seconds_per_image']:.1f} ms per image ({test['images']} images)",
        f"run folder {result.run_dir} (report.md, report.json, metrics.jsonl)",
    ])
    return 0


def evaluate_command(args) -> int:
    from cnnkit.detection.checkpoints import DETECTION, detector_from, read_detector_checkpoint
    from cnnkit.data.coco import read_coco
    from cnnkit.detection.predict import evaluate_detector
    from cnnkit.detection.splits import load_splits
    from cnnkit.detection.task import DetectionConfig
    from cnnkit.train.distributed import resolve_device

    checkpoint = read_detector_checkpoint(args.run, DETECTION)
    if args.data:
        dataset = read_coco(args.data, args.images, strict=not args.lenient)
    else:
        config = DetectionConfig.from_dict(checkpoint.config)
        if checkpoint.before_engine and config.data != "digit-scenes" and args.split == "test":
            raise ValueError(f"{checkpoint.path} was trained before validation and test were split apart: its test "
                             "images were its validation images, and today's test split holds images it trained on; "
                             "pass --data with images it has not seen")
        dataset = getattr(load_splits(config), args.split)
    result = evaluate_detector(detector_from(checkpoint), dataset, device=resolve_device(args.device))
    weakest = sorted((ap, name) for name, ap in result["voc_ap50"].items() if not math.isnan(ap))[:3]
    print_result(args, result, [
        f"{dataset.name}: mAP {result['map']:.3f} (0.5:0.95), mAP@0.5 {result['map50']:.3f}, mAP@0.75 "
        f"{result['map75']:.3f}, small/medium/large {result['map_small']:.3f}/{result['map_medium']:.3f}/"
        f"{result['map_large']:.3f}",
        f"VOC mAP@0.5 {result['voc_map50']:.3f}; weakest classes: " + ", ".join(f"{n} {ap:.3f}" for ap, n in weakest),
        f"{1000 * result['seconds_per_image']:.1f} ms per image ({result['images']} images)",
    ])
    return 0


def predict_command(args) -> int:
    from cnnkit.detection.backbones import fold_frozen_batch_norm
    from cnnkit.detection.predict import predict_files
    from cnnkit.inference import open_model
    from cnnkit.train.distributed import resolve_device

    for path in args.images:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such image file")
    opened = open_model(args.run)  # the file read once, whatever it holds
    if opened.task not in ("detection", "instance-segmentation"):
        raise ValueError(f"{args.run} holds a {opened.task} model, not a detector")
    model = fold_frozen_batch_norm(opened.model).to(resolve_device(args.device))
    records = predict_files(model, args.images, args.output, args.score)
    if args.format == "json":
        print(json.dumps(records))
        return 0
    for path in args.images:
        found = [r for r in records if r["file_name"] == str(path)]
        print(f"{path}: " + (", ".join(f"{r['category']} {r['score']:.2f} at {[round(v) for v in r['bbox']]}"
                                        for r in found) or "nothing above the score threshold"))
    if args.output:
        print(f"wrote {args.output}/ (images with boxes, detections.json)")
    return 0


def add_commands(subparsers) -> None:
    from cnnkit.detection.task import DetectionConfig

    formatter = argparse.RawDescriptionHelpFormatter
    group = subparsers.add_parser("detect", help="object detection: R-CNN, Fast R-CNN, Faster R-CNN",
                                  description="Train, evaluate and run object detectors.")
    commands = group.add_subparsers(dest="detect_command", metavar="COMMAND", required=True)

    parser = commands.add_parser("train", help="train a detector (default: Faster R-CNN on digit scenes)",
                                 description="Train a detector, keep the best checkpoint by validation mAP; "
                                 "resume exactly after an interruption.",
                                 epilog=TRAIN_EXAMPLES, formatter_class=formatter)
    parser.add_argument("--images", "--image-dir", dest="image_dir",
                        help="image folder of a COCO --data (default: found beside it)")
    add_train_options(parser, DetectionConfig, HELPS, skip=("image_dir",))
    parser.set_defaults(func=train_command)

    add_evaluate_command(commands, "COCO mAP and VOC AP@0.5 per class of a trained detector",
                         "a COCO annotation JSON (default: the run's own data)", EVALUATE_EXAMPLES, formatter,
                         evaluate_command)

    parser = commands.add_parser("predict", help="detect objects in image files, draw boxes, write JSON",
                                 description="Run a detector on image files.", epilog=PREDICT_EXAMPLES,
                                 formatter_class=formatter)
    parser.add_argument("run", metavar="RUN|WEIGHTS", help="a run folder, its best.pt or fasterrcnn_resnet50_fpn weights")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-o", "--output", help="folder for images with boxes drawn and detections.json")
    parser.add_argument("--score", type=float, default=0.5, help="lowest score shown (default: %(default)s)")
    add_device_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=predict_command)
