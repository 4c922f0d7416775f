"""Detection: R-CNN, Fast R-CNN and Faster R-CNN on the same data and backbone; cnnkit's Faster
R-CNN ResNet-50-FPN against torchvision's with the same weights.

Part 1 trains each method through the training engine on built-in digit scenes (the same
train/val/test scenes, the same small stride-8 backbone and fc6-fc7 head; R-CNN's train time is
its CNN's fine-tuning) and prints COCO mAP (0.5:0.95), mAP@0.5 and the test time per image,
proposals included — the lecture's story: R-CNN runs the CNN once per region,
Fast R-CNN once per image but waits for selective search, Faster R-CNN proposes with the network.

Part 2 times selective search and each detector's own work per test image, interleaved (R-CNN
and Fast R-CNN given the same proposals). Part 3 loads one randomly initialised torchvision
``fasterrcnn_resnet50_fpn`` (frozen batch norm, as its COCO model) state dict into
both libraries, checks they detect the same boxes, and times inference on a real photograph
(scikit-image's astronaut, 512×512, resized to 512 short side), interleaved, best of ``--reps``.
The ratio is cnnkit's time over torchvision's (≤ 1.0: cnnkit is as fast or faster).

    python benchmarks/detection.py                       # about 15-25 minutes on 2 busy cores
    python benchmarks/detection.py --parts timing torchvision --reps 5
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d

from cnnkit.data.images import sample_image
from cnnkit.detection.backbones import fold_frozen_batch_norm
from cnnkit.detection.faster_rcnn import fasterrcnn_resnet50_fpn
from cnnkit.detection.task import DetectionConfig
from cnnkit.train import train
from machine import best_times, describe_machine

RCNN_FINE_TUNING = {"epochs": 2, "batch_size": 1, "lr": 0.01, "warmup_steps": 0, "schedule": "constant"}
"""R-CNN's CNN fine-tunes on one image's 32 warped regions per step, then its SVMs are fitted."""


def three_methods(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for method, train_images, recipe in (("faster-rcnn", args.train_images, {"epochs": args.epochs}),
                                             ("fast-rcnn", args.train_images, {"epochs": args.epochs}),
                                             ("rcnn", args.rcnn_images, RCNN_FINE_TUNING)):
            config = DetectionConfig(method=method, train_images=train_images, val_images=args.val_images,
                                     test_images=args.test_images, patience=0, threads=args.threads, runs_dir=runs,
                                     device="cpu", **recipe)
            result = train(config, progress=False, log=lambda line, m=method: print(f"  [{m}] {line}", flush=True))
            test = result.test
            rows.append({"method": method, "train_images": train_images, "epochs": len(result.history),
                         "train_s": result.report["timing"]["train_seconds"], "map": test["map"], "map50": test["map50"],
                         "voc_map50": test["voc_map50"], "s_per_image": test["seconds_per_image"]})
    return rows


def torchvision_comparison(args) -> dict:
    torch.manual_seed(0)
    # torchvision's COCO model: ResNet-50-FPN with frozen batch norm, random weights here
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d)
    reference = FasterRCNN(backbone, num_classes=91, min_size=args.min_size, max_size=args.max_size).eval()
    with torch.no_grad():  # realistic batch-norm statistics, as trained weights have
        for module in reference.modules():
            if isinstance(module, FrozenBatchNorm2d):
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
    exact = fasterrcnn_resnet50_fpn(min_size=args.min_size, max_size=args.max_size, memory_format=torch.contiguous_format)
    exact.load_state_dict(state)
    plain = exact.eval().predict([image])[0]
    same = len(plain) == len(theirs["boxes"]) and torch.equal(plain.labels, theirs["labels"])
    difference = (plain.boxes - theirs["boxes"]).abs().max().item() if same and len(plain) else float("nan")
    score_difference = (mine.scores - theirs["scores"]).abs().max().item() if len(mine) == len(theirs["scores"]) else float("nan")

    def run_torchvision():
        with torch.inference_mode():
            reference([image])

    folded = fold_frozen_batch_norm(ours)
    folded_scores = folded.predict([image])[0].scores
    times = best_times({"torchvision": run_torchvision, "cnnkit": lambda: ours.predict([image]),
                        "folded": lambda: folded.predict([image])}, args.reps, 1)
    return {"torchvision_s": times["torchvision"], "cnnkit_s": times["cnnkit"], "ratio": times["cnnkit"] / times["torchvision"],
            "folded_s": times["folded"], "folded_ratio": times["folded"] / times["torchvision"],
            "folded_score_difference": (folded_scores - theirs["scores"]).abs().max().item()
            if len(folded_scores) == len(theirs["scores"]) else float("nan"),
            "same_detections": same, "max_box_difference": difference, "detections": len(mine),
            "channels_last_score_difference": score_difference}


def test_time_breakdown(args) -> dict:
    """Seconds per image, interleaved, on the same test scenes with untrained detectors (time
    does not depend on the weights): selective search alone; R-CNN and Fast R-CNN given the same
    selective-search proposals (their CNN work only); Faster R-CNN with its own proposals."""
    from cnnkit.detection.fast_rcnn import fast_rcnn
    from cnnkit.detection.faster_rcnn import faster_rcnn
    from cnnkit.detection.proposals import SelectiveSearch
    from cnnkit.detection.rcnn import rcnn
    from cnnkit.data.scenes import digit_scenes

    scenes = digit_scenes("test", args.timing_images)
    images = [scenes.image(i) for i in range(len(scenes))]
    search = SelectiveSearch()
    proposals = [search(image) for image in images]
    torch.manual_seed(0)
    models = {"rcnn": rcnn(scenes.categories).eval(), "fast": fast_rcnn("small", scenes.categories).eval(),
              "faster": faster_rcnn("small", scenes.categories).eval()}
    models["rcnn"].score_thresh = 1.0  # time the CNN work, not the NMS of untrained scores
    models["fast"].roi_heads.score_thresh = models["faster"].roi_heads.score_thresh = 1.0
    runs = {
        "selective search": lambda: [search(image) for image in images],
        "R-CNN, given proposals": lambda: models["rcnn"].predict(images, proposals),
        "Fast R-CNN, given proposals": lambda: [models["fast"].predict([im], [p]) for im, p in zip(images, proposals)],
        "Faster R-CNN (RPN proposals)": lambda: [models["faster"].predict([im]) for im in images],
    }
    times = best_times(runs, args.reps, 1)
    return {name: seconds / len(images) for name, seconds in times.items()} | {
        "regions": sum(map(len, proposals)) / len(proposals)}


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
    parser.add_argument("--timing-images", type=int, default=20, help="test scenes of the time breakdown")
    parser.add_argument("--parts", nargs="+", choices=("train", "timing", "torchvision"),
                        default=["train", "timing", "torchvision"], help="which parts to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe_machine(), flush=True)
    if "train" in args.parts:
        rows = three_methods(args)
        print("\n| method | train images × epochs | train time | test mAP | mAP@0.5 | VOC mAP@0.5 | test s/image |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['method']} | {r['train_images']} × {r['epochs']} | {r['train_s']:.0f} s | {r['map']:.3f} | "
                  f"{r['map50']:.3f} | {r['voc_map50']:.3f} | {r['s_per_image']:.3f} |")
    if "timing" in args.parts:
        breakdown = test_time_breakdown(args)
        print(f"\nTest time per image, {args.timing_images} scenes, {breakdown.pop('regions'):.0f} selective-search "
              f"regions per image, interleaved, best of {args.reps}:")
        print("| stage | ms/image |\n|---|---|")
        for name, seconds in breakdown.items():
            print(f"| {name} | {1000 * seconds:.1f} |")
    if "torchvision" not in args.parts:
        return
    result = torchvision_comparison(args)
    print(f"\nFaster R-CNN ResNet-50-FPN, astronaut 512×512 at min_size {args.min_size}, best of {args.reps}:")
    print("| library | s/image | ratio |\n|---|---|---|")
    print(f"| torchvision | {result['torchvision_s']:.3f} | 1.00 |")
    print(f"| cnnkit | {result['cnnkit_s']:.3f} | {result['ratio']:.2f} |")
    print(f"| cnnkit, batch norm folded | {result['folded_s']:.3f} | {result['folded_ratio']:.2f} |")
    print(f"plain layout: same labels as torchvision: {result['same_detections']} ({result['detections']} boxes, "
          f"max box difference {result['max_box_difference']:.1e} px); channels_last (timed): max score "
          f"difference {result['channels_last_score_difference']:.1e}, folded {result['folded_score_difference']:.1e}")


if __name__ == "__main__":
    main()
