"""The lecture's transfer-learning table, measured: every strategy on every cell, and the advisor's pick.

Two pretrained backbones, each with four targets (small/large × similar/different by design):

    A  CIFAR-10 ResNet-20, real weights (../shared/data/weights/resnet20-12fca82f.th)
         small similar   cifar10-sample: 500 real CIFAR-10 test images (JPEG), 10 classes
         large similar   CamVid patches: 60×60 road-scene patches labelled by their majority class
                         (sky, building, road, tree; ≥ 60 % pure), 180 per class, resized to 32×32
         small different digits, 30 per class (sklearn's 8×8 digits, 28×28, grey)
         large different digits, all 1,797 (122+ training images per class)
    B  ResNet-20 trained by cnnkit on the built-in digits (grey 28×28; 3 epochs, kept under WORK/)
         small similar   the digits' parity (even/odd): the same kind of images, a new task, 30 per class
         large similar   parity on all digits (600+ training images per class)
         small different cifar10-sample (colour 32×32: luminance and resizing adapt it)
         large different CamVid patches

Splits are stratified 70/15/15. Each cell runs `cnnkit.transfer.transfer` for linear,
intermediate (the probe's best layer), finetune-top and finetune-all (through the training
engine: lr 0.01 for the head, 0.001 for pretrained layers, cosine, batch 32, no augmentation,
round(1200 / N) epochs, 1 to 10, for N training images), each timed from a cold feature cache, then `advise`.
Prints a Markdown table: test top-1 per strategy (best in bold), wall seconds, the advisor's
quadrant and pick, and whether the pick is within 2 points of the best.

    .venv/bin/python benchmarks/transfer.py [--work /tmp/cnnkit-transfer-bench]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnkit.data import load_dataset, save_image
from cnnkit.data.dataset import SPLIT_FRACTIONS, stratified_split
from cnnkit.data.transforms import resize
from cnnkit.train import TrainConfig, train
from cnnkit.transfer import advise, prepare, transfer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CIFAR_WEIGHTS = SHARED / "weights" / "resnet20-12fca82f.th"
STRATEGIES = ("linear", "intermediate", "finetune-top", "finetune-all")
IMAGES_SEEN = 1200
CAMVID_CLASSES = {0: "sky", 1: "building", 3: "road", 5: "tree"}


# --- target datasets, written as image folders with train/val/test (the engine reads paths) ---


def write_folder(root: Path, images: torch.Tensor, labels: torch.Tensor, classes, seed: int = 0) -> Path:
    """Images (N, C, H, W) in [0, 1] as root/{train,val,test}/CLASS/i.png, stratified 70/15/15."""
    if root.exists():
        return root
    for split, indices in zip(("train", "val", "test"), stratified_split(labels, SPLIT_FRACTIONS, seed)):
        for i in indices.tolist():
            save_image(images[i], root / split / classes[int(labels[i])] / f"{i:05d}.png")
    return root


def per_class(labels: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """Indices of the first ``count`` images of each class after a seeded shuffle."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    chosen = [order[labels[order] == c][:count] for c in labels.unique().tolist()]
    return torch.cat(chosen).sort().values


def camvid_patches(size: int = 60, purity: float = 0.6, limit: int = 180) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping size×size patches of the 40 CamVid scenes whose majority label (≥ purity)
    is sky, building, road or tree; at most ``limit`` per class; resized to 32×32."""
    images, labels = [], []
    for split in ("train", "val"):
        for path in sorted((SHARED / "camvid-sample" / split).glob("*.png")):
            photo = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
            annotation = np.asarray(Image.open(SHARED / "camvid-sample" / f"{split}annot" / path.name))
            for top in range(0, annotation.shape[0] - size + 1, size):
                for left in range(0, annotation.shape[1] - size + 1, size):
                    counts = np.bincount(annotation[top:top + size, left:left + size].ravel(), minlength=12)
                    label = int(counts.argmax())
                    if label in CAMVID_CLASSES and counts[label] >= purity * size * size:
                        images.append(photo[:, top:top + size, left:left + size])
                        labels.append(list(CAMVID_CLASSES).index(label))
    images, labels = resize(torch.stack(images), 32), torch.tensor(labels)
    keep = per_class(labels, limit)
    return images[keep], labels[keep]


def build_targets(work: Path) -> dict[str, str]:
    data = work / "data"
    digits = load_dataset("digits")
    everything = torch.cat([digits.train.images, digits.val.images, digits.test.images])
    digit_labels = torch.cat([digits.train.labels, digits.val.labels, digits.test.labels])
    small_digits = per_class(digit_labels, 43)  # 30 of them train
    camvid_images, camvid_labels = camvid_patches()
    parity = digit_labels % 2
    small_parity = per_class(parity, 43)
    return {
        "cifar10-sample": str(SHARED / "cifar10-sample"),
        "camvid-patches": str(write_folder(data / "camvid", camvid_images, camvid_labels, list(CAMVID_CLASSES.values()))),
        "digits-30": str(write_folder(data / "digits-30", everything[small_digits], digit_labels[small_digits],
                                      [str(d) for d in range(10)])),
        "digits": "digits",
        "parity-30": str(write_folder(data / "parity-30", everything[small_parity], parity[small_parity],
                                      ["even", "odd"])),
        "parity": str(write_folder(data / "parity", everything, parity, ["even", "odd"])),
    }


def pretrain_on_digits(work: Path) -> Path:
    """Backbone B: ResNet-20 trained from scratch on the built-in digits by cnnkit's engine."""
    run = work / "runs" / "resnet20-digits"
    if not (run / "best.pt").exists():
        shutil.rmtree(run, ignore_errors=True)
        result = train(TrainConfig(model="resnet20", data="digits", epochs=3, batch_size=32, lr=0.05,
                                   runs_dir=str(run.parent), name=run.name, checkpoint_every_seconds=0),
                       progress=False)
        print(f"backbone B: resnet20 on digits, test top-1 {result.test['top1']:.1%}", file=sys.stderr)
    return run


# --- one cell ----------------------------------------------------------------------------


def run_cell(source, data: str, work: Path, cell: str) -> dict:
    cache = work / "cache" / cell
    shutil.rmtree(cache, ignore_errors=True)
    runs = work / "runs" / cell
    shutil.rmtree(runs, ignore_errors=True)
    train_size = len(prepare(source, data, cache_dir=None).dataset.train)
    epochs = max(1, min(10, round(IMAGES_SEEN / train_size)))
    config = TrainConfig(epochs=epochs, lr=0.01, batch_size=32, augmentation="none", runs_dir=str(runs),
                         checkpoint_every_seconds=0)
    results = {}
    for strategy in STRATEGIES:
        result = transfer(source, data, strategy=strategy, config=config, cache_dir=cache, progress=False)
        results[strategy] = {"top1": result.test["top1"], "seconds": result.seconds, "layer": result.layer}
        print(f"  {cell} {strategy}: {result.test['top1']:.1%} in {result.seconds:.1f} s", file=sys.stderr)
    started = time.perf_counter()
    advice = advise(source, data, cache_dir=cache)
    best = max(results.values(), key=lambda r: r["top1"])["top1"]
    picked = results[advice.strategy]["top1"]
    return {"cell": cell, "train_images": train_size, "epochs": epochs, "results": results,
            "advice": {**advice.to_dict(), "seconds": time.perf_counter() - started},
            "pick_within_2_points": best - picked <= 0.02 + 1e-9}


def markdown(rows: list[dict]) -> str:
    lines = ["| backbone | target (design) | train imgs | linear | intermediate | finetune-top | finetune-all "
             "| advisor: quadrant → pick | BN KL | probe peak | pick − best |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|"]
    for row in rows:
        results = row["results"]
        best = max(r["top1"] for r in results.values())
        cells = []
        for strategy in STRATEGIES:
            r = results[strategy]
            text = f"{100 * r['top1']:.1f} ({r['seconds']:.0f} s)"
            if strategy == "intermediate":
                text = f"{100 * r['top1']:.1f} @{r['layer']} ({r['seconds']:.0f} s)"
            cells.append(f"**{text}**" if r["top1"] == best else text)
        advice = row["advice"]
        divergence = advice["measurements"]["batchnorm_divergence"]["mean"]
        gap = 100 * (results[advice["strategy"]]["top1"] - best)
        lines.append(f"| {row['backbone']} | {row['target']} | {row['train_images']} | " + " | ".join(cells)
                     + f" | {advice['quadrant']} → {advice['strategy']} | {divergence:.3f} | "
                     f"{advice['measurements']['probe_peak']} | {gap:+.1f}{'' if row['pick_within_2_points'] else ' ✗'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/cnnkit-transfer-bench", help="folder for data, runs and caches")
    args = parser.parse_args()
    if not CIFAR_WEIGHTS.exists():
        print(f"needs {CIFAR_WEIGHTS} (../shared/data beside the project)", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    work = Path(args.work)
    started = time.perf_counter()
    targets = build_targets(work)
    backbone_b = pretrain_on_digits(work)
    plan = [
        ("A: CIFAR-10 ResNet-20", CIFAR_WEIGHTS, "small similar: cifar10-sample", "cifar10-sample"),
        ("A: CIFAR-10 ResNet-20", CIFAR_WEIGHTS, "large similar: CamVid patches", "camvid-patches"),
        ("A: CIFAR-10 ResNet-20", CIFAR_WEIGHTS, "small different: digits 30/class", "digits-30"),
        ("A: CIFAR-10 ResNet-20", CIFAR_WEIGHTS, "large different: digits", "digits"),
        ("B: ResNet-20 on digits", backbone_b, "small similar: digit parity 30/class", "parity-30"),
        ("B: ResNet-20 on digits", backbone_b, "large similar: digit parity", "parity"),
        ("B: ResNet-20 on digits", backbone_b, "small different: cifar10-sample", "cifar10-sample"),
        ("B: ResNet-20 on digits", backbone_b, "large different: CamVid patches", "camvid-patches"),
    ]
    rows = []
    for backbone, source, target, key in plan:
        cell = f"{backbone[0]}-{key}"
        rows.append({"backbone": backbone, "target": target, **run_cell(source, targets[key], work, cell)})
    (work / "results.json").write_text(json.dumps(rows, indent=2))
    print(markdown(rows))
    within = sum(row["pick_within_2_points"] for row in rows)
    print(f"\nadvisor's pick within 2 points of the best in {within} of {len(rows)} cells; "
          f"total {time.perf_counter() - started:.0f} s on {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
