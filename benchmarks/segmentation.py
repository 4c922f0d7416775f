"""Segmentation: the sliding-window baseline against FCN, and cnnkit's Mask R-CNN against torchvision's.

Part 1 (the lecture's motivation, measured) trains the sliding-window patch classifier and an
FCN-8s (ResNet-18, random initialisation) on the same data and prints test mean IoU, pixel
accuracy and the time per image of each: on built-in digit scenes (64×64; the sliding window tested on ``--sliding-images`` of the
100 test scenes) and, when present,
on the CamVid sample in ``../shared/data/camvid-sample`` (480×360; 30 training images; its 10
validation images, having no test split, are halved into 5 to validate and 5 to test; the
sliding window is timed on ``--camvid-sliding-images`` of them, since it classifies 172,800
patches per image, and validated on one). Both train through the training engine
(`cnnkit.train.train`) on the CPU.

Part 2 loads one randomly initialised torchvision ``maskrcnn_resnet50_fpn`` state dict into
both libraries, checks they give the same boxes and masks, and times inference on a real
photograph (scikit-image's astronaut), interleaved, best of ``--reps``. The ratio is cnnkit's
time over torchvision's (≤ 1.0: cnnkit is as fast or faster).

    python benchmarks/segmentation.py                   # tens of minutes on 2 busy cores
    python benchmarks/segmentation.py --skip-camvid --epochs 4 --reps 2
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn as torchvision_maskrcnn

from cnnkit.data.images import sample_image
from cnnkit.detection.mask_rcnn import maskrcnn_resnet50_fpn
from cnnkit.segmentation.task import SegmentationConfig
from cnnkit.train import train
from machine import best_times, describe_machine

CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid-sample"


def sliding_against_fcn(args, data: str, label: str, extra: dict[str, dict]) -> list[dict]:
    """Train each method with ``extra[method]`` options; test figures on the run's test split."""
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for method in ("sliding", "fcn"):
            config = SegmentationConfig(method=method, data=data, epochs=args.epochs, threads=args.threads,
                                        runs_dir=runs, device="cpu", **extra.get(method, {}))
            print(f"{label}, {method}:", flush=True)
            result = train(config)  # its lines on stderr
            test = result.test
            rows.append({"data": label, "method": method, "epochs": len(result.history),
                         "train_s": result.report["timing"]["train_seconds"], "mean_iou": test["mean_iou"],
                         "pixel_accuracy": test["pixel_accuracy"], "s_per_image": test["seconds_per_image"],
                         "images": test["images"]})
    return rows


def mask_rcnn_comparison(args) -> dict:
    torch.manual_seed(0)
    reference = torchvision_maskrcnn(weights=None, weights_backbone=None, min_size=args.min_size,
                                     max_size=args.max_size).eval()
    with torch.no_grad():  # realistic batch-norm statistics, as trained weights have
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    exact = maskrcnn_resnet50_fpn(min_size=args.min_size, max_size=args.max_size, memory_format=torch.contiguous_format)
    exact.load_state_dict(state)
    ours = maskrcnn_resnet50_fpn(min_size=args.min_size, max_size=args.max_size)  # channels_last: timed
    ours.load_state_dict(state)
    ours.eval()
    image = sample_image("astronaut")
    with torch.inference_mode():
        theirs = reference([image])[0]
    mine = exact.eval().predict([image])[0]  # the same arithmetic as torchvision: the same detections
    same = len(mine) == len(theirs["boxes"]) and (len(mine) == 0 or torch.equal(mine.labels, theirs["labels"]))
    box_difference = (mine.boxes - theirs["boxes"]).abs().max().item() if same and len(mine) else 0.0
    mask_difference = (mine.masks - theirs["masks"][:, 0]).abs().max().item() if same and len(mine) else 0.0

    def run_torchvision():
        with torch.inference_mode():
            reference([image])

    times = best_times({"torchvision": run_torchvision, "cnnkit": lambda: ours.predict([image])}, args.reps, 1)
    return {"torchvision_s": times["torchvision"], "cnnkit_s": times["cnnkit"],
            "ratio": times["cnnkit"] / times["torchvision"], "same_detections": same, "detections": len(mine),
            "max_box_difference": box_difference, "max_mask_difference": mask_difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--camvid-epochs", type=int, default=15)
    parser.add_argument("--sliding-images", type=int, default=20, help="digit scenes the sliding window is tested on")
    parser.add_argument("--camvid-sliding-images", type=int, default=2,
                        help="CamVid images the sliding window is tested on (172,800 patches each)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU)")
    parser.add_argument("--min-size", type=int, default=512)
    parser.add_argument("--max-size", type=int, default=853)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-builtin", action="store_true")
    parser.add_argument("--skip-camvid", action="store_true")
    parser.add_argument("--skip-mask-rcnn", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe_machine(), flush=True)
    rows = []
    if not args.skip_builtin:
        rows += sliding_against_fcn(args, "digit-scenes", "digit scenes", {"sliding": {"test_images": args.sliding_images}})
    if not args.skip_camvid and CAMVID.is_dir():
        camvid_args = argparse.Namespace(**{**vars(args), "epochs": args.camvid_epochs})
        common = {"batch_size": 4, "crop_size": 224, "flip": True}
        rows += sliding_against_fcn(camvid_args, str(CAMVID), "CamVid sample", {
            "sliding": {**common, "patches_per_image": 256, "val_images": 1, "test_images": args.camvid_sliding_images},
            "fcn": common})
    elif not args.skip_camvid:
        print(f"(CamVid sample not found at {CAMVID}; skipped)")
    if rows:
        print("\n| data | method | epochs | train time | test mean IoU | pixel accuracy | s/image (images) |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['data']} | {r['method']} | {r['epochs']} | {r['train_s']:.0f} s | {r['mean_iou']:.3f} | "
                  f"{r['pixel_accuracy']:.3f} | {r['s_per_image']:.3f} ({r['images']}) |")
        for data in dict.fromkeys(r["data"] for r in rows):
            pair = {r["method"]: r for r in rows if r["data"] == data}
            if len(pair) == 2:
                print(f"{data}: the sliding window takes {pair['sliding']['s_per_image'] / pair['fcn']['s_per_image']:.0f}× "
                      "the FCN's time per image")
    if not args.skip_mask_rcnn:
        result = mask_rcnn_comparison(args)
        print(f"\nMask R-CNN ResNet-50-FPN, astronaut 512×512 at min_size {args.min_size}, best of {args.reps}:")
        print("| library | s/image | ratio |\n|---|---|---|")
        print(f"| torchvision | {result['torchvision_s']:.3f} | 1.00 |")
        print(f"| cnnkit | {result['cnnkit_s']:.3f} | {result['ratio']:.2f} |")
        print("same detections (cnnkit in torchvision's memory layout; the timed channels_last model differs by "
              f"rounding): {result['same_detections']} ({result['detections']} instances, max box difference "
              f"{result['max_box_difference']:.1e} px, max mask difference {result['max_mask_difference']:.1e})")


if __name__ == "__main__":
    main()
