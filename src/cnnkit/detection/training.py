"""Training a detector: a small loop over ``model.loss`` with the engine's checkpoint pieces.

The engine in `cnnkit.train` batches ``(x, y)`` tensors of one size; detection batches are lists
of images of different sizes with a variable number of boxes each, and are scored by mAP, so
this loop is its own: SGD with momentum and linear warm-up, a step decay at 2/3 and 8/9 of the
epochs, validation loss and COCO mAP after every epoch, ``best.pt`` kept by validation mAP,
early stopping after ``patience`` epochs without improvement, ``last.pt`` written atomically
(`cnnkit.train.checkpoint.save_checkpoint`), ``metrics.jsonl`` one line per epoch and
``report.json`` with the test split's COCO and VOC figures and the time per image.
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

from cnnkit.detection.augment import box_augmentation
from cnnkit.detection.coco import read_coco
from cnnkit.detection.dataset import DetectionDataset, check_categories, iterate
from cnnkit.detection.metrics import coco_map, voc_ap
from cnnkit.files import atomic_write
from cnnkit.train.checkpoint import numbered_run_dir, read_run_checkpoint, save_checkpoint

METHODS = ("faster-rcnn", "fast-rcnn", "rcnn")
FORMAT = "cnnkit-detection-1"


@dataclass
class DetectionConfig:
    """What a detection run trains, on what, and how.

    method: faster-rcnn, fast-rcnn or rcnn. data: "digit-scenes" (built in) or a COCO
    annotation JSON (``images`` read from ``image_dir``; 10 % of the images, seeded, validate and
    test). backbone: a `cnnkit.detection.backbones.build_backbone` name. min_size/max_size: the
    detector's resizing. lenient: drop bad COCO annotations instead of failing. patience:
    epochs without a better validation mAP before stopping (0: never stop early).
    pretrain_steps: on digit scenes, steps of supervised pre-training of the backbone on single
    digits before detection training (`cnnkit.detection.pretrain`; 0: start from random
    weights; other data starts from random weights unless you load your own). threads:
    torch's intra-op threads (None: torch's default); on a CPU shared with other work, 1 thread
    avoids OpenMP threads waiting on each other (measured 6× faster on a busy 2-core machine).
    """

    method: str = "faster-rcnn"
    data: str = "digit-scenes"
    image_dir: str | None = None
    backbone: str = "small"
    epochs: int = 8
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    patience: int = 3
    augment: bool = True
    pretrain_steps: int = 300
    init_from: str | None = None
    train_images: int | None = None
    val_images: int | None = None
    test_images: int | None = None
    min_size: int = 128
    max_size: int = 256
    lenient: bool = False
    seed: int = 0
    threads: int | None = None
    runs: str = "runs"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be ≥ 1")


def load_splits(config: DetectionConfig) -> tuple[DetectionDataset, DetectionDataset, DetectionDataset]:
    """(train, val, test) for ``config.data``."""
    if config.data == "digit-scenes":
        from cnnkit.detection.scenes import digit_scenes

        return tuple(digit_scenes(split, count, seed=config.seed) for split, count in
                     (("train", config.train_images), ("val", config.val_images), ("test", config.test_images)))
    dataset = read_coco(config.data, config.image_dir, strict=not config.lenient)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed)).tolist()
    held_out = max(1, len(dataset) // 10)
    val = dataset.subset(order[:held_out])
    train = dataset.subset(order[held_out:])
    if config.train_images:
        train = train.subset(range(min(config.train_images, len(train))))
    return train, val, val


def build_detector(method: str, backbone: str, categories: list[str], min_size: int = 128, max_size: int = 256):
    """A fresh detector of ``method`` for ``categories``."""
    if method == "faster-rcnn":
        from cnnkit.detection.faster_rcnn import faster_rcnn

        return faster_rcnn(backbone, categories, min_size=min_size, max_size=max_size)
    if method == "fast-rcnn":
        from cnnkit.detection.fast_rcnn import fast_rcnn

        return fast_rcnn(backbone, categories, min_size=min_size, max_size=max_size)
    if method == "rcnn":
        from cnnkit.detection.rcnn import rcnn

        return rcnn(categories, backbone)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def detect_all(model, dataset: DetectionDataset, batch_size: int = 8) -> tuple[list, float]:
    """Detections for every image and the mean wall-clock seconds per image."""
    found, start = [], time.perf_counter()
    for images, _ in iterate(dataset, batch_size):
        found.extend(model.predict(images))
    return found, (time.perf_counter() - start) / max(1, len(dataset))


def evaluate_detector(model, dataset: DetectionDataset, batch_size: int = 8) -> dict:
    """COCO mAP figures, VOC AP@0.5 per class and its mean, and seconds per image."""
    check_categories(dataset, model.categories)
    found, seconds = detect_all(model, dataset, batch_size)
    result = coco_map(dataset, found)
    per_class = voc_ap(dataset, found)
    present = [ap for ap in per_class.values() if not math.isnan(ap)]
    result.update(voc_map50=sum(present) / max(1, len(present)), voc_ap50=per_class, seconds_per_image=seconds,
                  images=len(dataset))
    return result


def train_detector(config: DetectionConfig | None = None, log=print) -> dict:
    """Train, validate every epoch, keep the best by validation mAP, test it; returns the report
    (also written to ``RUN/report.json``) with ``run_dir``."""
    config = config or DetectionConfig()
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    train_set, val_set, test_set = load_splits(config)
    log(f"data: {train_set.name}: {len(train_set)} train, {len(val_set)} val, {len(test_set)} test images; "
        f"categories ({len(train_set.categories)}): {', '.join(train_set.categories)}")
    for problem in train_set.problems[:20]:
        log(f"  dropped/noted: {problem}")
    model = build_detector(config.method, config.backbone, train_set.categories, config.min_size, config.max_size)
    check_categories(val_set, model.categories)
    if config.init_from:
        copied = initialise_from(model, config.init_from)
        log(f"initialised from {config.init_from}: {len(copied)} tensors "
            f"({', '.join(sorted({name.split('.')[0] for name in copied}))})")
    elif config.pretrain_steps and config.data == "digit-scenes" and hasattr(model.backbone, "out_channels"):
        from cnnkit.detection.pretrain import pretrain_backbone

        pretrain_backbone(model.backbone, config.pretrain_steps, seed=config.seed, log=log)
    run_dir = numbered_run_dir(Path(config.runs) / (config.name or f"{config.method}-{Path(config.data).stem}"))
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    log(f"run folder: {run_dir}")
    if config.method == "rcnn":
        start = time.perf_counter()
        model.fit(train_set, log=log)
        history = [{"epoch": 1, "train_seconds": time.perf_counter() - start, **_short(evaluate_detector(model, val_set))}]
        _save(run_dir / "best.pt", config, model, None, 1, 0, history)
    else:
        history = _fit(model, config, train_set, val_set, run_dir, log)
    best = load_detector(run_dir / "best.pt")
    test = evaluate_detector(best, test_set, config.batch_size)
    report = {"run_dir": str(run_dir), "config": dataclasses.asdict(config), "history": history,
              "best_epoch": max(history, key=lambda r: r["val_map"])["epoch"], "test": test,
              "train_seconds": sum(r["train_seconds"] for r in history),
              "dropped": train_set.problems}
    with atomic_write(run_dir / "report.json") as temporary:
        temporary.write_text(json.dumps(report, indent=2))
    log(f"test: mAP {test['map']:.3f}, mAP@0.5 {test['map50']:.3f}, mAP@0.75 {test['map75']:.3f}, "
        f"VOC mAP@0.5 {test['voc_map50']:.3f}, {1000 * test['seconds_per_image']:.1f} ms/image")
    return report


def _fit(model, config: DetectionConfig, train_set, val_set, run_dir: Path, log) -> list[dict]:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if hasattr(model, "attach_proposals"):  # Fast R-CNN: selective search once per image, no augmentation
        log("computing selective-search proposals of the training and validation images")
        augmented, val_for_loss = model.attach_proposals(train_set), model.attach_proposals(val_set)
    else:
        boxes_only = train_set.subset(range(len(train_set)))  # masks are not trained here: do not warp them
        boxes_only.targets = [{k: v for k, v in t.items() if k != "masks"} for t in train_set.targets]
        augmented = boxes_only.with_transform(box_augmentation(flip=False) if config.augment else None)
        val_for_loss = val_set
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    milestones = [int(config.epochs * 2 / 3) * steps_per_epoch, int(config.epochs * 8 / 9) * steps_per_epoch]
    history, best, step, stale = [], -1.0, 0, 0
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        model.train()
        start, totals, batches = time.perf_counter(), {}, 0
        for images, targets in iterate(augmented, config.batch_size, torch.randperm(len(train_set), generator=generator)):
            factor = min(1.0, (step + 1) / config.warmup_steps) * 0.1 ** sum(step >= m for m in milestones)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * factor
            losses = model.loss(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise RuntimeError(f"non-finite loss at step {step} (epoch {epoch}): "
                                   f"{ {k: float(v) for k, v in losses.items()} }; the last good checkpoint is kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach())
            step, batches = step + 1, batches + 1
        seconds = time.perf_counter() - start
        validation = evaluate_detector(model, val_set, config.batch_size)
        record = {"epoch": epoch, "step": step, "train_seconds": seconds, "lr": config.lr * factor,
                  **{k: v / batches for k, v in totals.items()}, "val_loss": _validation_loss(model, val_for_loss, config),
                  **_short(validation)}
        history.append(record)
        improved = record["val_map"] > best
        if improved:
            best, stale = record["val_map"], 0
            _save(run_dir / "best.pt", config, model, optimizer, epoch, step, history)
        else:
            stale += 1
        _save(run_dir / "last.pt", config, model, optimizer, epoch, step, history)
        with open(run_dir / "metrics.jsonl", "a") as metrics:
            metrics.write(json.dumps(record) + "\n")
        log(f"epoch {epoch}/{config.epochs}: loss {sum(v for k, v in record.items() if k.startswith('loss')):.3f}, "
            f"val loss {record['val_loss']:.3f}, val mAP {record['val_map']:.3f}, mAP@0.5 {record['val_map50']:.3f}"
            f"{' (best)' if improved else ''}, {seconds:.0f} s")
        if config.patience and stale >= config.patience:
            log(f"stopping early: no better validation mAP for {stale} epochs (best {best:.3f})")
            break
    return history


@torch.no_grad()
def _validation_loss(model, dataset, config) -> float:
    """Mean total loss on ``dataset`` with frozen batch statistics (eval mode)."""
    was_training = model.training
    model.eval()
    total, batches = 0.0, 0
    torch.manual_seed(config.seed)  # the sampled RoIs, so the figure compares across epochs
    for images, targets in iterate(dataset, config.batch_size):
        total += float(sum(model.loss(images, targets).values()))
        batches += 1
    model.train(was_training)
    return total / max(1, batches)


def _short(validation: dict) -> dict:
    return {"val_map": validation["map"], "val_map50": validation["map50"], "val_voc_map50": validation["voc_map50"]}


def _save(path: Path, config, model, optimizer, epoch: int, step: int, history: list) -> None:
    state = {"format": FORMAT, "config": dataclasses.asdict(config), "categories": model.categories,
             "model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else {},
             "epoch": epoch, "batch": 0, "step": step, "history": history}
    save_checkpoint(state, path, keep_previous=path.name == "last.pt")


def initialise_from(model, path: str | os.PathLike) -> list[str]:
    """Copy into ``model`` every tensor of another detection run's checkpoint (a run folder or its
    ``best.pt``) with the same name and shape, names compared without ``roi_heads.``: R-CNN keeps
    its fc6-fc7 ``box_head`` at the top level, Fast and Faster R-CNN inside ``roi_heads``. So
    R-CNN → Fast R-CNN shares the backbone and fc6-fc7, Fast → Faster R-CNN everything but the
    RPN (the papers' shared convolutional layers). Returns the model's names copied; raises
    ValueError when the categories differ or nothing matches."""
    state, path = read_run_checkpoint(path, FORMAT, "detection")
    if list(state["categories"]) != list(model.categories):
        raise ValueError(f"{path}: trained on categories {state['categories']}, this model has {model.categories}; "
                         "initialise from a run on the same categories")
    theirs = {name.removeprefix("roi_heads."): tensor for name, tensor in state["model"].items()}
    copied = {name: theirs[name.removeprefix("roi_heads.")] for name, tensor in model.state_dict().items()
              if getattr(theirs.get(name.removeprefix("roi_heads.")), "shape", None) == tensor.shape}
    if not copied:
        raise ValueError(f"{path}: no tensor matches this {type(model).__name__} by name and shape "
                         "(is the backbone the same?)")
    model.load_state_dict(copied, strict=False)
    return sorted(copied)


def load_detector(path: str | os.PathLike):
    """A detector from a run folder (its ``best.pt``) or a checkpoint written by `train_detector`,
    in eval mode. Raises FileNotFoundError or ValueError naming the file."""
    state, _ = read_run_checkpoint(path, FORMAT, "detection",
                                   "; for torchvision weights use --weights with the resnet50-fpn backbone")
    config = DetectionConfig(**state["config"])
    model = build_detector(config.method, config.backbone, state["categories"], config.min_size, config.max_size)
    model.load_state_dict(state["model"])
    return model.eval()
