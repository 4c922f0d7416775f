"""The training loop: a run folder, epochs of optimiser steps, checkpoints, exact resume.

`train(config)` makes ``runs/NAME/`` and runs

    load the dataset → build the model (seeded) → for each epoch:
        for each batch of the epoch's permutation: augment → normalise → forward → loss →
            backward → (clip) → optimiser step at the schedule's learning rate
        evaluate on the validation split → checkpoint (last, and best by validation top-1) →
        one line of metrics.jsonl
    → evaluate the best checkpoint on the test split → report.json and report.md

`resume(run_dir)` continues from the last good checkpoint. Because the data order, the
augmentation and dropout are functions of (seed, epoch, step) (`cnnkit.train.batches`) and the
learning rate a function of the step (`cnnkit.train.schedules`), a run resumed at any step
ends with the same weights, bit for bit, as one that was never interrupted.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cnnkit.data import load_dataset
from cnnkit.data.transforms import augmentation, normalize
from cnnkit.files import atomic_write
from cnnkit.train import batches
from cnnkit.train.checkpoint import (
    BEST,
    CHECKPOINT_FORMAT,
    LAST,
    PREVIOUS,
    load_checkpoint,
    link_checkpoint,
    load_latest,
    save_checkpoint,
)
from cnnkit.train.config import TrainConfig
from cnnkit.train.distributed import (
    Processes,
    barrier,
    broadcast_object,
    process_group,
    resolve_device,
    restarted_by_torchrun,
    sum_over_processes,
)
from cnnkit.train.metrics import autocast_dtype
from cnnkit.train.progress import Progress
from cnnkit.train.report import write_report
from cnnkit.train.schedules import default_milestones, learning_rate
from cnnkit.train.task import ClassificationTask


class TrainingError(RuntimeError):
    """A run stopped; the message says where (epoch, step) and what to do."""


@dataclass
class RunResult:
    """A finished (or deliberately stopped) run.

    run_dir: the run folder. history: one record per finished epoch (as in metrics.jsonl).
    test: the best checkpoint's metrics on the test split (None when stopped early).
    best: {"metric", "value", "epoch"}. model: the best model in eval mode (the last one when
    stopped early). step: optimiser steps done.
    """

    run_dir: Path
    config: TrainConfig
    history: list[dict]
    test: dict | None
    best: dict
    model: nn.Module
    step: int
    report: dict = field(default_factory=dict)


def train(config: TrainConfig | None = None, *, task=None, progress: bool | None = None,
          stop_after_steps: int | None = None) -> RunResult:
    """Train ``config`` (default `TrainConfig()`) in a new run folder ``runs_dir/name``.

    task: supplies build_model, loss, correct and evaluate (default `ClassificationTask`), and
        optionally parameter_groups(model, config): optimiser groups ``{"params", "lr_scale"}``,
        each stepped at lr_scale × the schedule's rate (default: one group, every trainable parameter).
    progress: None: a bar on a terminal, plain lines otherwise; False: silent.
    stop_after_steps: save a checkpoint and return after this many optimiser steps in all
        (for splitting a run over processes; `resume` continues it).

    Under torchrun every process calls this with the same config; a worker that torchrun
    restarts (``--max-restarts``) resumes a named run from its last checkpoint instead.
    Raises ValueError when ``name`` is taken by a run with a checkpoint, `TrainingError` for
    a non-finite loss (naming the step) or out of memory (naming the batch size).
    """
    config = config or TrainConfig()
    task = task or ClassificationTask()
    device = resolve_device(config.device)
    with process_group(device) as processes:
        run_dir = Path(config.runs_dir) / config.name if config.name else None
        if run_dir is not None and restarted_by_torchrun() and _has_checkpoint(run_dir):
            state, _ = load_latest(run_dir, warn=_warner(processes))
            return _Run(config, run_dir, task, processes, progress, state).execute(stop_after_steps)
        run_dir = broadcast_object(new_run_dir(config) if processes.is_main else None, processes)
        config = replace(config, name=run_dir.name)
        if processes.is_main:
            _write_json(run_dir / "config.json", config.to_dict())
        return _Run(config, run_dir, task, processes, progress, None).execute(stop_after_steps)


def resume(run_dir: str | os.PathLike, *, task=None, progress: bool | None = None,
           stop_after_steps: int | None = None) -> RunResult:
    """Continue the run in ``run_dir`` from its last good checkpoint (``last.pt``, or
    ``previous.pt`` when the last is corrupt, which is reported) to its configured end."""
    run_dir = Path(run_dir)
    task = task or ClassificationTask()
    state, _ = load_latest(run_dir, warn=_warner(None))
    config = TrainConfig.from_dict(state["config"])
    config = replace(config, runs_dir=str(run_dir.parent), name=run_dir.name)
    with process_group(resolve_device(config.device)) as processes:
        return _Run(config, run_dir, task, processes, progress, state).execute(stop_after_steps)


class _Run:
    """One process's part of a run, set up from a config and optionally a checkpoint."""

    def __init__(self, config: TrainConfig, run_dir: Path, task, processes: Processes,
                 progress: bool | None, state: dict | None) -> None:
        self.config, self.run_dir, self.task, self.processes = config, run_dir, task, processes
        self.device = processes.device
        self.progress = Progress(progress if processes.is_main else False, config.epochs)
        self.dataset = load_dataset(config.data, config.data_root, download=config.download,
                                    image_size=config.image_size, skip_bad=config.skip_bad, seed=config.seed)
        self.world = processes.world_size
        if config.batch_size % self.world:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by the {self.world} processes")
        self.batch_size = config.batch_size // self.world  # per process
        shard_size = -(-len(self.dataset.train) // self.world)
        self.steps_per_epoch = batches.batch_count(shard_size, self.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        preset = config.augmentation or self.dataset.augmentation
        self.augment = augmentation(preset, self.dataset.image_size)
        self.preset = preset

        torch.manual_seed(batches.derived_seed(config.seed, batches.INIT))
        self.model = task.build_model(config, self.dataset).to(self.device)
        self.optimizer = _optimizer(config, self.model, task)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp and self.device.type == "cuda")
        self.state = {"epoch": 0, "batch": 0, "step": 0, "history": [],
                      "best": {"metric": f"val_{task.monitor}", "value": None, "epoch": None},
                      "epoch_totals": _zero_totals()}
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.state = {key: state[key] for key in self.state}
            if self.processes.is_main:  # metrics.jsonl as of the checkpoint: later lines are redone
                _write_lines(run_dir / "metrics.jsonl", self.state["history"])
        self.network = self.model
        if self.world > 1:
            self.network = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if config.compile:
            self.network = torch.compile(self.network)
        self.last_save = time.monotonic()

    # --- the loop ---------------------------------------------------------------------------

    def execute(self, stop_after_steps: int | None) -> RunResult:
        config, state = self.config, self.state
        while state["epoch"] < config.epochs:
            if self._train_epoch(stop_after_steps):
                return RunResult(self.run_dir, config, state["history"], None, state["best"],
                                 self.model.eval(), state["step"])
        return self._finish()

    def _train_epoch(self, stop_after_steps: int | None) -> bool:
        """Run the rest of the current epoch; True when stopped at ``stop_after_steps``."""
        config, state, dataset = self.config, self.state, self.dataset
        epoch = state["epoch"]
        order = batches.shard(batches.epoch_order(len(dataset.train), config.seed, epoch),
                              self.processes.rank, self.world)
        self.progress.start_epoch(epoch, self.steps_per_epoch, state["batch"])
        totals = state["epoch_totals"]
        generator = torch.Generator()  # the transforms draw on the CPU
        self.model.train()
        started = time.perf_counter()
        for x, y in batches.iterate_batches(dataset.train, order, self.batch_size, state["batch"], config.workers):
            loss, correct = self._step(x, y, generator)
            state["batch"] += 1
            state["step"] += 1
            totals["loss_sum"] += loss * len(y)
            totals["correct"] += correct
            totals["images"] += len(y)
            self.progress.update(len(y) * self.world, loss)
            stop = stop_after_steps is not None and state["step"] >= stop_after_steps
            if stop or self._periodic_save_due():
                totals["seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                self._save()
            if stop:
                return True
        totals["seconds"] += time.perf_counter() - started
        self._end_epoch()
        return False

    def _step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[float, int]:
        """One optimiser step on a batch; returns (mean loss over all processes, top-1 hits here)."""
        config, state, rank = self.config, self.state, self.processes.rank
        lr = self._learning_rate(state["step"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        x = x.to(self.device, non_blocking=True)  # (B, C, H, W) in [0, 1]
        y = y.to(self.device, non_blocking=True)
        generator.manual_seed(batches.derived_seed(config.seed, batches.AUGMENT, rank, state["step"]))
        x = normalize(self.augment(x, generator), self.dataset.mean, self.dataset.std)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        torch.manual_seed(batches.derived_seed(config.seed, batches.DROPOUT, rank, state["step"]))
        try:
            with torch.autocast(self.device.type, dtype=autocast_dtype(self.device), enabled=config.amp):
                outputs = self.network(x)
                loss = self.task.loss(outputs, y, config)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not _is_out_of_memory(error):
                raise
            raise TrainingError(self._out_of_memory_message()) from None
        # Every process checks the mean loss, so that all stop together, before any update.
        loss_value = float(sum_over_processes(loss.detach().double().cpu().reshape(1), self.processes)) / self.world
        if not math.isfinite(loss_value):
            raise TrainingError(self._non_finite_message(loss_value, lr))
        if config.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss_value, int(self.task.correct(outputs.detach(), y))

    def _learning_rate(self, step: int) -> float:
        config = self.config
        return learning_rate(
            config.schedule, config.lr, step, self.total_steps, self.steps_per_epoch,
            warmup_steps=round(config.warmup_epochs * self.steps_per_epoch),
            milestones=config.lr_milestones or default_milestones(config.epochs), gamma=config.lr_gamma,
        )

    def _end_epoch(self) -> None:
        config, state = self.config, self.state
        totals = state["epoch_totals"]
        summed = sum_over_processes(
            torch.tensor([totals["loss_sum"], totals["correct"], totals["images"]], dtype=torch.float64),
            self.processes).tolist()
        val = self.task.evaluate(self.model, self.dataset.val, self.dataset, config, self.device)
        record = {
            "epoch": state["epoch"],
            "step": state["step"],
            "train_loss": summed[0] / max(summed[2], 1),
            "train_top1": summed[1] / max(summed[2], 1),
            "val_loss": val["loss"],
            "val_top1": val.get("top1"),
            "val_top5": val.get("top5"),
            "lr": self._learning_rate(max(state["step"] - 1, 0)),
            "seconds": totals["seconds"],
            "images_per_second": summed[2] / max(totals["seconds"], 1e-9),
        }
        state["history"].append(record)
        value = val.get(self.task.monitor)
        best = state["best"]
        improved = value is not None and (best["value"] is None or value > best["value"])
        if improved:
            state["best"] = {"metric": best["metric"], "value": value, "epoch": state["epoch"]}
        state["epoch"] += 1
        state["batch"] = 0
        state["epoch_totals"] = _zero_totals()
        self._save(best=improved)
        if self.processes.is_main:
            with open(self.run_dir / "metrics.jsonl", "a") as lines:
                lines.write(json.dumps(record) + "\n")
                lines.flush()
                os.fsync(lines.fileno())
        self.progress.end_epoch(record)

    def _finish(self) -> RunResult:
        """Evaluate the best checkpoint on the test split and write the report."""
        barrier(self.processes)  # best.pt is complete before anyone reads it
        best_path = self.run_dir / BEST
        if best_path.exists():
            self.model.load_state_dict(load_checkpoint(best_path)["model"])
        test = self.task.evaluate(self.model, self.dataset.test, self.dataset, self.config, self.device)
        report = {}
        if self.processes.is_main:
            report = write_report(self.run_dir, self.config, self.dataset, self.state, test, self.preset,
                                  self.processes)
            self.progress.write(f"test top-1 {100 * test['top1']:.2f} % (best epoch "
                                f"{(self.state['best']['epoch'] or 0) + 1}); run folder {self.run_dir}")
        return RunResult(self.run_dir, self.config, self.state["history"], test, self.state["best"],
                         self.model.eval(), self.state["step"], report)

    # --- checkpoints ------------------------------------------------------------------------

    def _periodic_save_due(self) -> bool:
        config, state = self.config, self.state
        if config.checkpoint_every_steps and state["step"] % config.checkpoint_every_steps == 0:
            return True
        # Time-based saves follow process 0's clock alone: only it writes, nothing waits for it.
        return (self.processes.is_main and config.checkpoint_every_seconds > 0
                and time.monotonic() - self.last_save >= config.checkpoint_every_seconds)

    def _save(self, best: bool = False) -> None:
        self.last_save = time.monotonic()
        if not self.processes.is_main:
            return
        checkpoint = self._checkpoint()
        save_checkpoint(checkpoint, self.run_dir / LAST, keep_previous=True)
        if best:
            link_checkpoint(self.run_dir / LAST, self.run_dir / BEST)

    def _checkpoint(self) -> dict:
        state, dataset = self.state, self.dataset
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "dataset": {"name": dataset.name, "classes": list(dataset.classes), "mean": list(dataset.mean),
                        "std": list(dataset.std), "image_size": list(dataset.image_size),
                        "in_channels": dataset.in_channels},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "schedule": {"step": state["step"], "lr": self._learning_rate(state["step"])},
            "epoch": state["epoch"],
            "batch": state["batch"],
            "step": state["step"],
            "best": dict(state["best"]),
            "epoch_totals": dict(state["epoch_totals"]),
            "history": list(state["history"]),
            "rng": {"seed": self.config.seed, "world_size": self.world, "torch_cpu": torch.get_rng_state(),
                    "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    # --- messages ---------------------------------------------------------------------------

    def _where(self) -> str:
        state = self.state
        return (f"step {state['step'] + 1} (epoch {state['epoch'] + 1}, batch {state['batch'] + 1} "
                f"of {self.steps_per_epoch})")

    def _last_good(self) -> str:
        path = self.run_dir / LAST
        return f"the last good checkpoint {path} is kept" if path.exists() else "no checkpoint was written yet"

    def _non_finite_message(self, value: float, lr: float) -> str:
        return (f"loss is {value} at {self._where()} of run {self.run_dir}; {self._last_good()}. "
                f"Lower the learning rate (now {lr:.3g}), set clip_grad_norm (--clip-grad-norm 1), "
                "or check the data for bad values")

    def _out_of_memory_message(self) -> str:
        smaller = max(self.config.batch_size // 2, self.world)
        return (f"out of memory on {self.device} with batch size {self.config.batch_size} "
                f"({self.batch_size} per process) at {self._where()}; {self._last_good()} (untouched). "
                f"Use a smaller batch size, e.g. --batch-size {smaller}, and resume or start again")


def _optimizer(config: TrainConfig, model: nn.Module, task) -> torch.optim.Optimizer:
    if hasattr(task, "parameter_groups"):
        parameters = task.parameter_groups(model, config)
    else:
        parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def _zero_totals() -> dict:
    return {"loss_sum": 0.0, "correct": 0, "images": 0, "seconds": 0.0}


def _has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in (LAST, PREVIOUS))


def new_run_dir(config: TrainConfig) -> Path:
    """Create and return ``runs_dir/name``; a derived name gets the first free ``-2``, ``-3``…"""
    runs_dir = Path(config.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    if config.name:
        run_dir = runs_dir / config.name
        if _has_checkpoint(run_dir):
            raise ValueError(f"run folder {run_dir} already holds a run; resume it (--resume {run_dir}) "
                             "or choose another name")
        run_dir.mkdir(exist_ok=True)
        return run_dir
    base = f"{config.model}-{Path(config.data).name or 'data'}"
    for number in range(1, 100_000):
        run_dir = runs_dir / (base if number == 1 else f"{base}-{number}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"{runs_dir}: no free run name {base}-N; pass a name")


def _write_json(path: Path, value) -> None:
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2) + "\n")


def _write_lines(path: Path, records: list[dict]) -> None:
    with atomic_write(path) as temporary:
        temporary.write_text("".join(json.dumps(record) + "\n" for record in records))


def _warner(processes: Processes | None):
    def warn(message: str) -> None:
        if processes is None or processes.is_main:
            print(f"warning: {message}", file=sys.stderr)

    return warn
