"""What a task gives the engine, and image classification, the first task.

The engine (`cnnkit.train.engine`) owns the run: its folder, seeds and data order, schedule,
optimiser, device, AMP, compile, clipping, DDP, the finite check, checkpoints and resume, early
stopping, progress and the report. A task owns everything that depends on what is learned:

    name                      written in every checkpoint: "classification", "detection", …
    config_class              the `RunConfig` subclass its runs are configured with
    monitor                   the key of evaluate()'s result that picks best.pt (higher is better)
    recorded                  evaluate()'s keys written to metrics.jsonl as val_KEY
    load_data(config)         → data with .train, .val and .test splits (called first, once a run)
    build_model(config, data, initialise)
                              → the model; initialise is False when a checkpoint's weights follow
                                (skip pre-training and weight files)
    batches(split, indices, batch_size, config)
                              → (inputs, targets) batches of split[indices], in order, drawing no
                                random numbers (len(targets) is the batch's size)
    prepare(batch, step)      → the arguments of losses(): augmentation, drawing on step.generator
                                or torch's global generator (both seeded by the engine per step),
                                and the move to step.device
    losses(model, *arguments) → {name: 0-d tensor}; the terms whose name starts with "loss" are
                                summed into the objective, the others (detached) are averaged
                                over the epoch as training figures (train_NAME)
    evaluate(model, split, data, config, device)
                              → metrics, equal on every process of a distributed run
    state(data)               → plain values that, with the config, rebuild the model for
                                inference (classes, normalisation, …): the checkpoint's "dataset"
    describe(data)            → what each split holds, for the report
    summary(metrics)          → the headline figures in one line

and optionally parameter_groups(model, config) (optimiser groups ``{"params", "lr_scale"}``),
finish(model, data, config) (a closed-form stage after the gradient steps, such as R-CNN's
SVMs, applied to the best model before it is tested), report(data, test) (extra fields of
report.json), markdown(report) (extra lines of report.md) and find_unused_parameters (for DDP).
Before load_data the engine sets ``task.say``, a function that prints one line where the run
prints (process 0 only): the data's split sizes, what initialised the model, and so on.

`losses` runs inside the engine's wrapper module, so DistributedDataParallel sees the forward
pass whatever verb the model uses (``model(x)`` or ``model.loss(images, targets)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.data import load_dataset
from cnnkit.data.transforms import augmentation, normalize
from cnnkit.models.registry import create_classifier
from cnnkit.models.weights import load_weights
from cnnkit.train.batches import iterate_batches
from cnnkit.train.config import TrainConfig
from cnnkit.train.metrics import evaluate


@dataclass
class Step:
    """What `prepare` gets from the engine at one optimiser step: where the tensors go, the
    generator seeded for this step's augmentation, the run's config and data, the step number."""

    device: torch.device
    generator: torch.Generator
    config: object
    data: object
    number: int


class ClassificationTask:
    """Classification with a registry model, cross-entropy and top-k accuracy."""

    name = "classification"
    config_class = TrainConfig
    monitor = "top1"
    recorded = ("loss", "top1", "top5")
    find_unused_parameters = False

    def load_data(self, config: TrainConfig):
        """`load_dataset` of the config; keeps the augmentation preset (the config's, else the
        dataset's recommendation) and the label smoothing for the steps."""
        dataset = load_dataset(config.data, config.data_root, download=config.download,
                               image_size=config.image_size, skip_bad=config.skip_bad, seed=config.seed)
        self.preset = config.augmentation or dataset.augmentation
        self.augment = augmentation(self.preset, dataset.image_size)
        self.label_smoothing, self.channels_last = config.label_smoothing, config.channels_last
        return dataset

    def build_model(self, config: TrainConfig, dataset, initialise: bool = True) -> nn.Module:
        """`create_model(config.model)` sized for the dataset's classes, channels and (for
        networks without global pooling, e.g. LeNets) image size; pretrained ``config.weights``
        loaded with the classifier reset to the dataset's number of classes."""
        model = create_classifier(config.model, dataset.num_classes, dataset.in_channels, dataset.image_size)
        if config.weights and initialise:
            load_weights(model, config.weights, reset_head=True)
        return model

    def batches(self, imageset, indices: Tensor, batch_size: int, config):
        return iterate_batches(imageset, indices, batch_size, workers=config.workers)

    def prepare(self, batch, step: Step) -> tuple[Tensor, Tensor]:
        """Images (B, C, H, W) in [0, 1] → augmented, normalised with the training statistics,
        channels_last; labels (B,) to the device."""
        x, y = batch
        x = x.to(step.device, non_blocking=True)
        x = normalize(self.augment(x, step.generator), step.data.mean, step.data.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(step.device, non_blocking=True)

    def losses(self, model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Mean cross-entropy with label smoothing ε (targets (1 − ε) one-hot + ε / K), and the
        batch's top-1 accuracy (a training figure)."""
        outputs = model(x).float()  # (B, K)
        return {"loss": F.cross_entropy(outputs, y, label_smoothing=self.label_smoothing),
                "top1": (outputs.detach().argmax(1) == y).float().mean()}

    def evaluate(self, model: nn.Module, imageset, dataset, config, device: torch.device) -> dict:
        return evaluate(
            model, imageset, mean=dataset.mean, std=dataset.std, num_classes=dataset.num_classes,
            batch_size=max(256, config.batch_size), device=device, channels_last=config.channels_last,
            amp=config.amp, workers=config.workers,
        )

    def state(self, dataset) -> dict:
        return {"name": dataset.name, "classes": list(dataset.classes), "mean": list(dataset.mean),
                "std": list(dataset.std), "image_size": list(dataset.image_size),
                "in_channels": dataset.in_channels}

    def describe(self, dataset) -> dict:
        """The dataset's metadata and, for data read from files, the files of each split."""
        files = dataset.split_files()
        return {**dataset.to_dict(), **({"files": files} if files else {})}

    def summary(self, metrics: dict) -> str:
        return (f"top-1 {_percent(metrics.get('top1'))}, top-5 {_percent(metrics.get('top5'))}, "
                f"loss {metrics.get('loss', float('nan')):.4f} on {metrics.get('count', 0)} images")

    def report(self, dataset, test: dict) -> dict:
        return {"augmentation": self.preset,
                "per_class_accuracy": dict(zip(dataset.classes, test.get("per_class_accuracy", []))),
                "confusion_matrix": test.get("confusion_matrix"),
                "skipped": [{"path": str(path), "reason": reason} for path, reason in dataset.skipped]}

    def markdown(self, report: dict) -> list[str]:
        classes = list(report["per_class_accuracy"])
        lines = [f"Augmentation {report['augmentation']}.", "", "## Per-class accuracy", "",
                 "| class | accuracy |", "|---|---|"]
        lines += [f"| {name} | {_percent(value)} |" for name, value in report["per_class_accuracy"].items()]
        matrix = report["confusion_matrix"]
        if matrix:
            lines += ["", "## Confusion matrix (rows: true class, columns: predicted)", "",
                      "| | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
            lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(classes, matrix)]
        lines += ["", "## Skipped files", ""]
        lines += [f"- {item['path']}: {item['reason']}" for item in report["skipped"]] or ["none"]
        return lines


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"
