"""One call per transfer strategy, each ending in a run folder like `cnnkit train`'s.

    transfer(source, data, strategy="auto")
        prepare (load, adapt size and channels) → advise (when "auto") →
        linear | intermediate: features (cached) → logistic regression → report, checkpoint
        finetune-top | finetune-all: logistic regression on the classifier's input as the
            new head's start → the training engine with a `FineTuneTask`

The run folder keeps ``config.json`` (the `TrainConfig`), ``transfer.json`` (source, strategy,
layer, adaptations, the advice and probe when computed) and ``report.json``/``report.md``. A
linear classifier on the classifier's input is folded into the network
(`LinearClassifier.as_linear`), so its ``best.pt`` is a complete model that ``cnnkit predict``,
``evaluate`` and ``export`` read; an intermediate-layer classifier is kept as
``probe_head.safetensors`` (weights on the raw pooled features of ``layer``).
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnkit.files import atomic_write
from cnnkit.train import TrainConfig, resume, train
from cnnkit.train.checkpoint import BEST, CHECKPOINT_FORMAT
from cnnkit.train.engine import new_run_dir
from cnnkit.train.metrics import confusion_matrix, per_class_accuracy, topk_correct
from cnnkit.transfer.advisor import Advice, advise
from cnnkit.transfer.features import HEAD_INPUT, check_layer
from cnnkit.transfer.finetune import DEFAULT_PRETRAINED_LR_SCALE, FineTuneTask, default_top_blocks
from cnnkit.transfer.probe import LayerScore, Target, fit_layer, prepare, probe_layers

STRATEGY_NAMES = ("auto", "linear", "intermediate", "finetune-top", "finetune-all")
TRANSFER_FILE = "transfer.json"
FINETUNE_DEFAULTS = {"epochs": 10, "lr": 0.01}
"""Fine-tuning defaults that differ from `TrainConfig`'s training from scratch: fewer epochs
and a lower peak learning rate (the new head's; pretrained layers get a tenth of it)."""


def default_config(**fields) -> TrainConfig:
    """`TrainConfig` with `FINETUNE_DEFAULTS`, then ``fields``."""
    return TrainConfig(**{**FINETUNE_DEFAULTS, **fields})


@dataclass
class TransferResult:
    """A finished transfer run: its folder, the strategy (and layer) used, test metrics
    ({"loss", "top1", "top5", "count"}), validation top-1, seconds, the advice when asked."""

    run_dir: Path
    strategy: str
    layer: str | None
    test: dict
    val_top1: float | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    advice: Advice | None = None

    def to_dict(self) -> dict:
        return {"run": str(self.run_dir), "strategy": self.strategy, "layer": self.layer, "test": self.test,
                "val_top1": self.val_top1, "seconds": round(self.seconds, 2), "adaptations": self.notes,
                "advice": self.advice.to_dict() if self.advice else None}


def transfer(source, data, *, strategy: str = "auto", layer: str | None = None, config: TrainConfig | None = None,
             architecture: str | None = None, top_blocks: int | None = None,
             pretrained_lr_scale: float = DEFAULT_PRETRAINED_LR_SCALE, freeze_bn: bool = False,
             cache_dir: str | os.PathLike | None = "default", progress: bool | None = None) -> TransferResult:
    """Transfer the pretrained ``source`` (weights file, run folder or checkpoint) to ``data``.

    strategy: "auto" follows `advise`; "linear" (logistic regression on the classifier's
    input, or on ``layer``), "intermediate" (on ``layer``, default the probe's best),
    "finetune-top" (the top ``top_blocks`` blocks, default the last stage, and a new head),
    "finetune-all". config: the training settings (epochs, lr, runs_dir, name, …; ``data``,
    ``model`` and ``image_size`` are set here). Raises ValueError for an unknown strategy or
    layer and the errors of `prepare`.
    """
    if strategy not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGY_NAMES)}")
    started = time.perf_counter()
    config = config or default_config()
    target = prepare(source, data, architecture=architecture, data_root=config.data_root,
                     cache_dir=cache_dir, seed=config.seed)
    if layer is not None:
        check_layer(target.model, layer)
    advice = None
    if strategy == "auto":
        advice = advise(target)
        strategy = advice.strategy
        layer = layer or advice.layer
    pretrained = target.pretrained
    size = pretrained.image_size
    resized = any(note.startswith("images resized") for note in target.notes)
    config = replace(config, data=str(data), model=pretrained.architecture, weights=None,
                     image_size=size[0] if resized and size[0] == size[1] else config.image_size)
    settings = {"source": str(pretrained.source), "architecture": pretrained.architecture,
                "weights_sha256": pretrained.fingerprint, "strategy": strategy, "adaptations": target.notes,
                "advice": advice.to_dict() if advice else None}

    if strategy in ("linear", "intermediate"):
        probe = advice.probe if advice else None
        if layer is None:
            if strategy == "linear":
                layer = HEAD_INPUT
            else:
                probe = probe or probe_layers(target)
                layer = probe.best.layer
        score = next((s for s in probe.scores if s.layer == layer), None) if probe else None
        score = score or fit_layer(target, layer)
        with new_run_dir(config) as claimed:
            run_dir = claimed.path
            config = replace(config, name=run_dir.name)
            test = _write_feature_run(run_dir, config, target, score, {**settings, "layer": layer,
                                      "probe": probe.to_dict() if probe else None})
        return TransferResult(run_dir, strategy, layer, test, score.val_top1, time.perf_counter() - started,
                              target.notes, advice)

    if layer is not None:
        raise ValueError(f"--layer {layer} applies to the linear and intermediate strategies, not {strategy}"
                         + (" (the advice)" if advice else ""))
    top = default_top_blocks(pretrained.model) if top_blocks is None else top_blocks
    probe = advice.probe if advice else None
    start = probe.score(HEAD_INPUT) if probe else fit_layer(target, HEAD_INPUT)
    task = FineTuneTask(pretrained, top if strategy == "finetune-top" else None, pretrained_lr_scale, freeze_bn,
                        head=start.classifier.as_linear())
    result = train(config, task=task, progress=progress)
    _write_json(result.run_dir / TRANSFER_FILE, {**settings, "layer": None, **task.settings()})
    best = result.best.get("value")
    return TransferResult(result.run_dir, strategy, None, result.report.get("test", result.test), best,
                          time.perf_counter() - started, target.notes, advice)


def resume_transfer(run_dir: str | os.PathLike, progress: bool | None = None) -> TransferResult:
    """Continue an interrupted fine-tuning run from its last checkpoint (`cnnkit.train.resume`
    with the `FineTuneTask` rebuilt from ``transfer.json``). Feature runs finish in one go."""
    run_dir = Path(run_dir)
    settings_path = run_dir / TRANSFER_FILE
    if not settings_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {TRANSFER_FILE}; not a cnnkit transfer run")
    settings = json.loads(settings_path.read_text())
    if not settings["strategy"].startswith("finetune"):
        raise ValueError(f"{run_dir}: a {settings['strategy']} run is finished when written; nothing to resume")
    from cnnkit.transfer.backbone import load_pretrained

    started = time.perf_counter()
    task = FineTuneTask(load_pretrained(settings["source"], settings["architecture"]), settings["top_blocks"],
                        settings["pretrained_lr_scale"], settings["freeze_bn"])
    result = resume(run_dir, task=task, progress=progress)
    return TransferResult(run_dir, settings["strategy"], None, result.report.get("test", result.test),
                          result.best.get("value"), time.perf_counter() - started, settings["adaptations"])


def _write_feature_run(run_dir: Path, config: TrainConfig, target: Target, score: LayerScore, settings: dict) -> dict:
    """config.json, transfer.json, report.json/.md, and best.pt (head-input) or probe_head.safetensors."""
    dataset, classifier = target.dataset, score.classifier
    features, labels = target.features(score.layer, "test")
    logits = classifier.logits(features)
    hits = topk_correct(logits, labels)
    matrix = confusion_matrix(logits.argmax(1), labels, dataset.num_classes)
    count = len(labels)
    test = {"loss": float(F.cross_entropy(logits, labels)), "top1": hits[1] / count, "top5": hits[5] / count,
            "count": count}
    _write_json(run_dir / "config.json", config.to_dict())
    _write_json(run_dir / TRANSFER_FILE, {**settings, "val_top1": score.val_top1, "penalty": classifier.penalty,
                                          "feature_dimensions": score.dimensions})
    report = {"run": run_dir.name, "model": config.model, "strategy": settings["strategy"], "layer": score.layer,
              "data": dataset.to_dict(), "test": test,
              "per_class_accuracy": dict(zip(dataset.classes, per_class_accuracy(matrix))),
              "confusion_matrix": matrix.tolist(), "val_top1": score.val_top1,
              "timing": {"seconds": round(score.seconds, 3)}, "adaptations": target.notes}
    _write_json(run_dir / "report.json", report)
    with atomic_write(run_dir / "report.md") as temporary:
        temporary.write_text(
            f"# {run_dir.name}\n\n{settings['strategy']} transfer of {config.model} ({target.pretrained.source}) "
            f"to {dataset.name}: logistic regression on {score.layer} ({score.dimensions} features).\n\n"
            f"Test top-1 {test['top1']:.2%} ({count} images), validation top-1 {score.val_top1:.2%}.\n\n"
            + "".join(f"- {note}\n" for note in target.notes))
    if score.layer == HEAD_INPUT:
        model = copy.deepcopy(target.model)
        setattr(model, model.classifier_name, classifier.as_linear())
        _save_model_checkpoint(run_dir / BEST, model, config, target)
    else:
        from safetensors.torch import save_file

        layer = classifier.as_linear()
        with atomic_write(run_dir / "probe_head.safetensors") as temporary:
            save_file({"weight": layer.weight.detach().contiguous(), "bias": layer.bias.detach().contiguous()},
                      str(temporary), metadata={"layer": score.layer, "classes": json.dumps(dataset.classes)})
    return test


def _save_model_checkpoint(path: Path, model, config: TrainConfig, target: Target) -> None:
    """A checkpoint `load_trained` reads: the complete model, config and input normalisation."""
    dataset = target.dataset
    state = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(),
             "dataset": {"name": dataset.name, "classes": list(dataset.classes), "mean": list(target.mean),
                         "std": list(target.std), "image_size": list(dataset.image_size),
                         "in_channels": dataset.in_channels},
             "model": model.state_dict(), "optimizer": {}, "epoch": 0, "batch": 0, "step": 0,
             "best": {"metric": "val_top1", "value": None, "epoch": None}, "history": []}
    with atomic_write(path) as temporary:
        torch.save(state, temporary)


def _write_json(path: Path, value) -> None:
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2) + "\n")
