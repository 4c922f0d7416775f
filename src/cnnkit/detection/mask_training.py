"""Training Mask R-CNN: the detection loop's recipe with the mask branch trained and scored.

SGD with momentum and linear warm-up, a step decay at 2/3 and 8/9 of the epochs, the five
Mask R-CNN losses summed, COCO mask AP and box AP (pycocotools) on the validation split after
every epoch, ``best.pt`` by validation mask AP, ``last.pt`` written atomically with the previous
one kept (`cnnkit.train.checkpoint.save_checkpoint`), ``metrics.jsonl`` and ``report.json``
with the test split's figures and time per image. Data: built-in digit scenes, whose targets
carry each digit's mask, or a COCO annotation JSON with polygon or RLE masks
(`cnnkit.detection.coco_masks.read_coco_instances`; 10 % of the images, seeded, validate and test).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnkit.detection.dataset import DetectionDataset, check_categories, iterate
from cnnkit.detection.mask_metrics import coco_mask_map
from cnnkit.detection.mask_rcnn import MaskRCNN, mask_rcnn
from cnnkit.files import atomic_write
from cnnkit.train.checkpoint import holds_checkpoint, numbered_run_dir, read_run_checkpoint, save_checkpoint

FORMAT = "cnnkit-mask-rcnn-1"


@dataclass
class MaskRCNNConfig:
    """What a Mask R-CNN run trains, on what, and how (see `cnnkit.detection.training.DetectionConfig`
    for the shared fields). data: "digit-scenes" or a COCO annotation JSON (images in image_dir,
    default found beside it; lenient drops bad annotations)."""

    data: str = "digit-scenes"
    image_dir: str | None = None
    lenient: bool = False
    backbone: str = "small"
    epochs: int = 8
    batch_size: int = 8
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    train_images: int | None = 300
    val_images: int | None = 50
    test_images: int | None = 100
    min_size: int = 128
    max_size: int = 256
    seed: int = 0
    threads: int | None = None
    runs: str = "runs"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.data != "digit-scenes" and not self.data.endswith(".json"):
            raise ValueError(f"Mask R-CNN trains on digit-scenes or a COCO annotation JSON, not {self.data!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be ≥ 1")


def load_instance_splits(config: MaskRCNNConfig) -> tuple[DetectionDataset, DetectionDataset, DetectionDataset]:
    """(train, val, test) with instance masks for ``config.data``."""
    if config.data == "digit-scenes":
        from cnnkit.detection.scenes import digit_scenes

        return tuple(digit_scenes(split, count, seed=config.seed) for split, count in
                     (("train", config.train_images), ("val", config.val_images), ("test", config.test_images)))
    from cnnkit.detection.coco_masks import read_coco_instances

    dataset = read_coco_instances(config.data, config.image_dir, strict=not config.lenient)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed)).tolist()
    held_out = max(1, len(dataset) // 10)
    val, train = dataset.subset(order[:held_out]), dataset.subset(order[held_out:])
    if config.train_images:
        train = train.subset(range(min(config.train_images, len(train))))
    return train, val, val


def evaluate_mask_rcnn(model: MaskRCNN, dataset: DetectionDataset, batch_size: int = 8) -> dict:
    """COCO mask AP and box AP figures and the mean seconds per image."""
    check_categories(dataset, model.categories)
    found, start = [], time.perf_counter()
    for images, _ in iterate(dataset, batch_size):
        found.extend(model.predict(images))
    seconds = (time.perf_counter() - start) / max(1, len(dataset))
    return {**coco_mask_map(dataset, found), "seconds_per_image": seconds, "images": len(dataset)}


def train_mask_rcnn(config: MaskRCNNConfig | None = None, log=print) -> dict:
    """Train, validate every epoch, keep the best by validation mask AP, test it; returns the report."""
    config = config or MaskRCNNConfig()
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    train_set, val_set, test_set = load_instance_splits(config)
    log(f"data: {train_set.name}: {len(train_set)} train, {len(val_set)} val, {len(test_set)} test images")
    model = mask_rcnn(config.backbone, train_set.categories, min_size=config.min_size, max_size=config.max_size)
    run_dir = numbered_run_dir(Path(config.runs) / (config.name or f"mask-rcnn-{Path(config.data).stem}"))
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    log(f"run folder: {run_dir}")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    milestones = [int(config.epochs * 2 / 3) * steps_per_epoch, int(config.epochs * 8 / 9) * steps_per_epoch]
    generator = torch.Generator().manual_seed(config.seed)
    history, best, step = [], -1.0, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        start, totals, batches = time.perf_counter(), {}, 0
        for images, targets in iterate(train_set, config.batch_size, torch.randperm(len(train_set), generator=generator)):
            factor = min(1.0, (step + 1) / config.warmup_steps) * 0.1 ** sum(step >= m for m in milestones)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * factor
            losses = model.loss(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise RuntimeError(f"non-finite loss at step {step + 1} (epoch {epoch}): "
                                   f"{ {k: float(v) for k, v in losses.items()} }; the last good checkpoint is kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach())
            step, batches = step + 1, batches + 1
        seconds = time.perf_counter() - start
        validation = evaluate_mask_rcnn(model, val_set, config.batch_size)
        record = {"epoch": epoch, "step": step, "train_seconds": seconds, **{k: v / batches for k, v in totals.items()},
                  "val_mask_map": validation["mask_map"], "val_mask_map50": validation["mask_map50"],
                  "val_box_map": validation["box_map"]}
        history.append(record)
        improved = record["val_mask_map"] > best
        if improved:
            best = record["val_mask_map"]
            _save(run_dir / "best.pt", config, model, optimizer, epoch, step, history)
        _save(run_dir / "last.pt", config, model, optimizer, epoch, step, history)
        with open(run_dir / "metrics.jsonl", "a") as lines:
            lines.write(json.dumps(record) + "\n")
        log(f"epoch {epoch}/{config.epochs}: loss {sum(v for k, v in record.items() if k.startswith('loss')):.3f} "
            f"(mask {record['loss_mask']:.3f}), val mask AP {record['val_mask_map']:.3f}, mask AP@0.5 "
            f"{record['val_mask_map50']:.3f}, box AP {record['val_box_map']:.3f}{' (best)' if improved else ''}, "
            f"{seconds:.0f} s")
    test = evaluate_mask_rcnn(load_mask_rcnn(run_dir / "best.pt"), test_set, config.batch_size)
    report = {"run_dir": str(run_dir), "config": dataclasses.asdict(config), "history": history,
              "best_epoch": max(history, key=lambda r: r["val_mask_map"])["epoch"], "test": test,
              "train_seconds": sum(r["train_seconds"] for r in history)}
    with atomic_write(run_dir / "report.json") as temporary:
        temporary.write_text(json.dumps(report, indent=2))
    log(f"test: mask AP {test['mask_map']:.3f}, mask AP@0.5 {test['mask_map50']:.3f}, box AP {test['box_map']:.3f}, "
        f"{1000 * test['seconds_per_image']:.1f} ms/image")
    return report


def _save(path: Path, config, model, optimizer, epoch: int, step: int, history: list) -> None:
    state = {"format": FORMAT, "config": dataclasses.asdict(config), "categories": model.categories,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "batch": 0,
             "step": step, "history": history}
    save_checkpoint(state, path, keep_previous=path.name == "last.pt")


def is_mask_rcnn_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` (a run folder or checkpoint) holds a Mask R-CNN of `train_mask_rcnn`."""
    path = Path(path)
    try:
        return holds_checkpoint(path / "best.pt" if path.is_dir() else path, FORMAT)
    except ValueError:
        return False


def load_mask_rcnn(path: str | os.PathLike) -> MaskRCNN:
    """A Mask R-CNN from a run folder (its ``best.pt``) or checkpoint, in eval mode."""
    state, _ = read_run_checkpoint(path, FORMAT, "Mask R-CNN")
    config = MaskRCNNConfig(**state["config"])
    model = mask_rcnn(config.backbone, state["categories"], min_size=config.min_size, max_size=config.max_size)
    model.load_state_dict(state["model"])
    return model.eval()
