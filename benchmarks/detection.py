"""Detection: R-CNN, Fast R-CNN and Faster R-CNN on the same data and backbone; cnnkit's Faster
R-CNN ResNet-50-FPN against torchvision's with the same weights.

Part 1 trains each method on built-in digit scenes (the same train/val/test scenes, the same
small stride-8 backbone and fc6-fc7 head) and prints COCO mAP (0.5:0.95), mAP@0.5 and the test
time per image, proposals included — the lecture's story: R-CNN runs the CNN once per region,
Fast R-CNN once per image but waits for selective search, Faster R-CNN proposes with the network.

Part 2 loads one randomly initialised torchvision ``fasterrcnn_resnet50_fpn`` state dict into
both libraries, checks they detect the same boxes, and times inference on a real photograph
(scikit-image's astronaut, 512×512, resized to 512 short side), interleaved, best of ``--reps``.
The ratio is cnnkit's time over torchvision's (≤ 1.0: cnnkit is as fast or faster).

    python benchmarks/detection.py                       # about 15-25 minutes on 2 busy cores
    python benchmarks/detection.py --skip-training --reps 5
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn as torchvision_fasterrcnn

from cnnkit.data.images import sample_image
from cnnkit.detection.faster_rcnn import fasterrcnn_resnet50_fpn
from cnnkit.detection.training import DetectionConfig, train_detector
from machine import best_times, describe_machine


def three_methods(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for method, epochs, train_images in (("faster-rcnn", args.epochs, args.train_images),
                                              ("fast-rcnn", args.epochs, args.train_images),
                                              ("rcnn", 1, args.rcnn_images)):
            config = DetectionConfig(method=method, epochs=epochs, train_images=train_images, val_images=args.val_images,
                                     test_images=args.test_images, patience=0, threads=args.threads, runs=runs)
            report = train_detector(config, log=lambda line, m=method: print(f"  [{m}] {line}", flush=True))
            test = report["test"]
            rows.append({"method": method, "train_images": train_images, "epochs": len(report["history"]),
                         "train_s": report["train_seconds"], "map": test["map"], "map50": test["map50"],
                         "voc_map50": test["voc_map50"], "s_per_image": test["seconds_per_image"]})
    return rows


def torchvision_comparison(args) -> dict:
    torch.manual_seed(0)
    reference = torchvision_fasterrcnn(weights=None, weights_backbone=None, min_size=args.min_size,
                                       max_size=args.max_size).eval()
    with torch.no_grad():  # realistic batch-norm statistics, as trained weights have
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    ours = fasterrcnn_resnet50_fpn(min_size=args.min_size, max_size=args.max_size)
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    ours.load_state_dict(state)
    ours.eval()
    image = sample_image("astronaut")
    with torch.inference_mode():
        theirs = reference([image])[0]
    mine = ours.predict([image])[0]
    same = len(mine) == len(theirs["boxes"]) and (len(mine) == 0 or torch.equal(mine.labels, theirs["labels"]))
    difference = (mine.boxes - theirs["boxes"]).abs().max().item() if same and len(mine) else 0.0

    def run_torchvision():
        with torch.inference_mode():
            reference([image])

    times = best_times({"torchvision": run_torchvision, "cnnkit": lambda: ours.predict([image])}, args.reps, 1)
    return {"torchvision_s": times["torchvision"], "cnnkit_s": times["cnnkit"], "ratio": times["cnnkit"] / times["torchvision"],
            "same_detections": same, "max_box_difference": difference, "detections": len(mine)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--rcnn-images", type=int, default=150, help="R-CNN's training images (its stages are slow)")
    parser.add_argument("--val-images", type=int, default=50)
    parser.add_argument("--test-images", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU)")
    parser.add_argument("--min-size", type=int, default=512)
    parser.add_argument("--max-size", type=int, default=853)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-training", action="store_true", help="only the torchvision comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe_machine(), flush=True)
    if not args.skip_training:
        rows = three_methods(args)
        print("\n| method | train images × epochs | train time | test mAP | mAP@0.5 | VOC mAP@0.5 | test s/image |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['method']} | {r['train_images']} × {r['epochs']} | {r['train_s']:.0f} s | {r['map']:.3f} | "
                  f"{r['map50']:.3f} | {r['voc_map50']:.3f} | {r['s_per_image']:.3f} |")
    result = torchvision_comparison(args)
    print(f"\nFaster R-CNN ResNet-50-FPN, astronaut 512×512 at min_size {args.min_size}, best of {args.reps}:")
    print("| library | s/image | ratio |\n|---|---|---|")
    print(f"| torchvision | {result['torchvision_s']:.3f} | 1.00 |")
    print(f"| cnnkit | {result['cnnkit_s']:.3f} | {result['ratio']:.2f} |")
    print(f"same detections: {result['same_detections']} ({result['detections']} boxes, "
          f"max box difference {result['max_box_difference']:.1e} px)")


if __name__ == "__main__":
    main()
