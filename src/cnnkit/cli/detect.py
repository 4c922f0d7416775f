"""Commands on object detection: ``detect train``, ``detect evaluate`` and ``detect predict``."""

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
  cnnkit detect train                                   # Faster R-CNN on built-in digit scenes, a few minutes
  cnnkit detect train --method fast-rcnn --epochs 6     # selective search + RoI max pooling
  cnnkit detect train --method rcnn --train-images 150  # warped regions, SVMs, box regression
  cnnkit detect train --init-from runs/fast-rcnn-digit-scenes  # Faster R-CNN: Fast R-CNN's layers plus an RPN
  cnnkit detect train --data coco/annotations/instances_train.json --images coco/train \\
      --backbone resnet18-c4 --min-size 512 --max-size 800 --lenient

A run folder runs/NAME/ keeps config.json, metrics.jsonl (validation loss and mAP per epoch),
best.pt (by validation mAP), last.pt and report.json (test COCO mAP, VOC AP@0.5 per class,
time per image). --data is digit-scenes or a COCO annotation JSON; the dataset's categories
are printed first and checked against the model's.
"""

EVALUATE_EXAMPLES = """\
examples:
  cnnkit detect evaluate runs/faster-rcnn-digit-scenes
  cnnkit detect evaluate runs/my-run --data val/annotations.json --images val/ --format json
"""

PREDICT_EXAMPLES = """\
examples:
  cnnkit detect predict runs/faster-rcnn-digit-scenes scene.png -o detected/
  cnnkit detect predict fasterrcnn_resnet50_fpn_coco-258fb6c6.pth photo.jpg -o out/ --score 0.7
Writes OUT/NAME.png with labelled boxes and OUT/detections.json (COCO result format plus the
file name); --format json prints the records.
"""


def train_command(args) -> int:
    from cnnkit.detection.training import DetectionConfig, train_detector

    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(DetectionConfig)
              if hasattr(args, field.name)}
    log = print if args.format == "text" else (lambda line: None)
    report = train_detector(DetectionConfig(**values), log=log)
    test = report["test"]
    print_result(args, {"run": report["run_dir"], "test": test, "best_epoch": report["best_epoch"]}, [
        f"run folder {report['run_dir']} (best epoch {report['best_epoch']}; report.json, metrics.jsonl)",
    ])
    return 0


def evaluate_command(args) -> int:
    from cnnkit.detection.coco import read_coco
    from cnnkit.detection.training import DetectionConfig, evaluate_detector, load_detector, load_splits

    model = load_detector(args.run)
    if args.data:
        dataset = read_coco(args.data, args.images, strict=not args.lenient)
    else:
        run = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
        config = DetectionConfig(**json.loads((run / "config.json").read_text()))
        dataset = load_splits(config)[("train", "val", "test").index(args.split)]
    result = evaluate_detector(model, dataset)
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
    from cnnkit.detection.predict import open_detector, predict_files

    for path in args.images:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such image file")
    model = open_detector(args.run)
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
    from cnnkit.detection.backbones import BACKBONES
    from cnnkit.detection.training import METHODS, DetectionConfig

    formatter = argparse.RawDescriptionHelpFormatter
    group = subparsers.add_parser("detect", help="object detection: R-CNN, Fast R-CNN, Faster R-CNN",
                                  description="Train, evaluate and run object detectors.")
    commands = group.add_subparsers(dest="detect_command", metavar="COMMAND", required=True)
    defaults = DetectionConfig()

    parser = commands.add_parser("train", help="train a detector (default: Faster R-CNN on digit scenes)",
                                 description="Train a detector, keep the best checkpoint by validation mAP.",
                                 epilog=TRAIN_EXAMPLES, formatter_class=formatter)
    parser.add_argument("--method", choices=METHODS, default=defaults.method, help="(default: %(default)s)")
    parser.add_argument("--data", default=defaults.data, help="digit-scenes or a COCO annotation JSON (default: %(default)s)")
    parser.add_argument("--images", dest="image_dir", help="image folder of a COCO --data (default: found beside it)")
    parser.add_argument("--backbone", choices=BACKBONES, default=defaults.backbone, help="(default: %(default)s)")
    for name, kind, text in (("epochs", int, "passes over the training images"), ("batch_size", int, "images per step"),
                             ("lr", float, "peak learning rate of SGD"),
                             ("warmup_steps", int, "steps of linear learning-rate warm-up"), ("patience", int,
                              "stop after this many epochs without a better validation mAP; 0: never"),
                             ("train_images", int, "use only this many training images"),
                             ("val_images", int, "validation images of digit scenes"),
                             ("test_images", int, "test images of digit scenes"),
                             ("min_size", int, "resize the short side to this"), ("max_size", int, "cap on the long side"),
                             ("pretrain_steps", int, "digit scenes: pre-train the backbone on single digits "
                              "for this many steps first; 0: from random weights"),
                             ("threads", int, "torch threads (1 is fastest on a busy shared CPU)"),
                             ("seed", int, "seed of data, splits and initialisation")):
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(defaults, name),
                            help=f"{text} (default: %(default)s)")
    parser.add_argument("--init-from", metavar="RUN", help="start from another detection run's weights of the same "
                        "name and shape (R-CNN → Fast R-CNN: backbone and fc6-fc7; Fast → Faster: all but the RPN) "
                        "instead of pre-training")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=defaults.augment,
                        help="random rescale and crop that keep boxes right (default: %(default)s)")
    add_run_folder_options(parser, defaults.runs)
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
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=predict_command)
