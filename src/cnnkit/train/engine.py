"""The training loop of every task: a run folder, epochs of optimiser steps, checkpoints, exact resume.

`train(config)` claims ``runs/NAME/`` and runs, with the task of the config (`cnnkit.train.task`):

    task.load_data → task.build_model (seeded) → for each epoch:
        for each batch of the epoch's permutation: task.prepare (augmentation, device) →
            task.losses (forward, inside DDP and autocast) → sum of the "loss" terms → finite
            check → backward → (clip) → optimiser step at the schedule's learning rate
        task.evaluate on the validation split → checkpoint (last, and best by the task's
        monitor) → one line of metrics.jsonl → early stop after ``patience`` epochs without a
        better validation figure
    → task.finish (closed-form stages) → evaluate the best checkpoint on the test split →
      report.json and report.md

`resume(run_dir)` continues from the last good checkpoint. Because the data order, the
augmentation and dropout are functions of (seed, epoch, step) (`cnnkit.train.batches`) and the
learning rate a function of the step (`cnnkit.train.schedules`), a run resumed at any step
ends with the same weights, bit for bit, as one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
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

from cnnkit.files import atomic_write
from cnnkit.train import batches
from cnnkit.train.checkpoint import (
    BEST,
    CHECKPOINT_FORMAT,
    LAST,
    PREVIOUS,
    link_checkpoint,
    load_checkpoint,
    load_latest,
    save_checkpoint,
)
from cnnkit.train.config import RESUMABLE, RunConfig
from cnnkit.train.distributed import (
    Processes,
    barrier,
    broadcast_buffers,
    broadcast_object,
    process_group,
    resolve_device,
    restarted_by_torchrun,
    sum_over_processes,
)
from cnnkit.train.metrics import autocast_dtype
from cnnkit.train.progress import Progress
from cnnkit.train.report import write_report
from cnnkit.train.schedules import learning_rate
from cnnkit.train.task import ClassificationTask, Step


class TrainingError(RuntimeError):
    """A run stopped; the message says where (epoch, step) and what to do."""


@dataclass
class RunResult:
    """A finished (or deliberately stopped) run.

    run_dir: the run folder. history: one record per finished epoch (as in metrics.jsonl).
    test: the best checkpoint's metrics on the test split (None when stopped early).
    best: {"metric", "value", "epoch"}. model: the best model in eval mode (the last one when
    stopped early). step: optimiser steps done. report: report.json's content (empty on the
    processes of a distributed run other than process 0, which write nothing).
    """

    run_dir: Path
    config: RunConfig
    history: list[dict]
    test: dict | None
    best: dict
    model: nn.Module
    step: int
    report: dict = field(default_factory=dict)


def train(config: RunConfig | None = None, *, task=None, progress: bool | None = None,
          stop_after_steps: int | None = None, log=None) -> RunResult:
    """Train ``config`` (default `TrainConfig()`) in a new run folder ``runs_dir/name``.

    task: what is learned (`cnnkit.train.task`; default `config.task()`, classification for a
        `TrainConfig`).
    progress: None: a bar on a terminal, plain lines otherwise; False: silent.
    stop_after_steps: save a checkpoint and return after this many optimiser steps in all
        (for splitting a run over processes; `resume` continues it).
    log: where the run's lines go (default: the progress stream).

    Under torchrun every process calls this with the same config; a worker that torchrun
    restarts (``--max-restarts``) resumes a named run from its last checkpoint instead.
    Raises ValueError when ``name`` is taken by a run with a checkpoint or by a run in progress,
    `TrainingError` for a non-finite loss (naming the step) or out of memory (naming the batch size).
    """
    task = task or (config.task() if config is not None else ClassificationTask())
    config = config or task.config_class()
    device = resolve_device(config.device)
    with process_group(device) as processes:
        run_dir = Path(config.runs_dir) / config.name if config.name else None
        if run_dir is not None and restarted_by_torchrun() and _has_checkpoint(run_dir):
            state, _ = load_latest(run_dir, warn=_warner(processes))
            with _claim(run_dir, processes):
                return _Run(config, run_dir, task, processes, progress, state, log).execute(stop_after_steps)
        claimed = new_run_dir(config) if processes.is_main else None
        run_dir = broadcast_object(claimed.path if claimed else None, processes)
        with claimed or contextlib.nullcontext():
            config = replace(config, name=run_dir.name)
            if processes.is_main:
                _write_json(run_dir / "config.json", config.to_dict())
            return _Run(config, run_dir, task, processes, progress, None, log).execute(stop_after_steps)


def resume(run_dir: str | os.PathLike, *, task=None, progress: bool | None = None,
           stop_after_steps: int | None = None, changes: dict | None = None, log=None) -> RunResult:
    """Continue the run in ``run_dir`` from its last good checkpoint (``last.pt``, or
    ``previous.pt`` when the last is corrupt, which is reported) to its configured end.

    task: the run's task (default classification); a checkpoint of another task is refused,
        naming it. changes: config fields to change, only those in `RESUMABLE` (more epochs,
        another learning rate after a non-finite loss, another device…); each change is
        reported and config.json rewritten, and any other field that differs from the run's
        raises ValueError naming it.
    """
    run_dir = Path(run_dir)
    task = task or ClassificationTask()
    state, _ = load_latest(run_dir, warn=_warner(None))
    kind = state.get("task", "classification")
    if kind != task.name:
        raise ValueError(f"{run_dir} is a {kind} run, not {task.name}; resume it with its own command")
    config = task.config_class.from_dict(state["config"])
    config = replace(config, runs_dir=str(run_dir.parent), name=run_dir.name)
    config, said = apply_changes(config, changes or {}, run_dir)
    with process_group(resolve_device(config.device)) as processes:
        with _claim(run_dir, processes):
            run = _Run(config, run_dir, task, processes, progress, state, log)
            if said and processes.is_main:
                _write_json(run_dir / "config.json", config.to_dict())
            for line in said:
                run.say(line)
            return run.execute(stop_after_steps)


def apply_changes(config: RunConfig, changes: dict, run_dir: Path) -> tuple[RunConfig, list[str]]:
    """``config`` with ``changes`` applied and a sentence per change; ValueError naming the first
    field that cannot change on resume (it would change the run's numbers)."""
    said, applied = [], {}
    for key, value in changes.items():
        if key in ("runs_dir", "name") or getattr(config, key) == value:
            continue
        if key not in RESUMABLE:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag} cannot change when resuming {run_dir} (the run has {getattr(config, key)!r}, "
                             f"given {value!r}); start a new run instead. Changeable: "
                             + ", ".join("--" + name.replace("_", "-") for name in RESUMABLE))
        applied[key] = value
        said.append(f"resume: {key} changed from {getattr(config, key)!r} to {value!r}")
    config = replace(config, **applied)
    if applied and "epochs" in applied and config.schedule != "constant":
        said.append("resume: the schedule is stretched to the new number of epochs from this step on")
    return config, said


class _Run:
    """One process's part of a run, set up from a config and optionally a checkpoint."""

    def __init__(self, config: RunConfig, run_dir: Path, task, processes: Processes,
                 progress: bool | None, state: dict | None, log) -> None:
        self.config, self.run_dir, self.task, self.processes = config, run_dir, task, processes
        self.device = processes.device
        if config.threads:
            torch.set_num_threads(config.threads)
        self.progress = Progress(progress if processes.is_main else False, config.epochs)
        self.log = log
        task.say = self.say
        self.data = task.load_data(config)
        self.world = processes.world_size
        if config.batch_size % self.world:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by the {self.world} processes")
        self.batch_size = config.batch_size // self.world  # per process
        shard_size = -(-len(self.data.train) // self.world)
        self.steps_per_epoch = batches.batch_count(shard_size, self.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs

        torch.manual_seed(batches.derived_seed(config.seed, batches.INIT))
        self.model = task.build_model(config, self.data, initialise=state is None).to(self.device)
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
            self.state["epoch_totals"] = _upgrade_totals(self.state["epoch_totals"])
            if self.processes.is_main:  # metrics.jsonl as of the checkpoint: later lines are redone
                _write_lines(run_dir / "metrics.jsonl", self.state["history"])
        self.objective: nn.Module = Objective(task, self.model)
        if self.world > 1:
            self.objective = DistributedDataParallel(
                self.objective, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=getattr(task, "find_unused_parameters", False))
        if config.compile:
            self.objective = torch.compile(self.objective)
        self.last_save = time.monotonic()

    def say(self, line: str) -> None:
        if self.log is not None:
            if self.processes.is_main:
                self.log(line)
        else:
            self.progress.write(line)

    # --- the loop ---------------------------------------------------------------------------

    def execute(self, stop_after_steps: int | None) -> RunResult:
        config, state = self.config, self.state
        while state["epoch"] < config.epochs and not self._patience_exhausted():
            if self._train_epoch(stop_after_steps):
                return RunResult(self.run_dir, config, state["history"], None, state["best"],
                                 self.model.eval(), state["step"])
        if self._patience_exhausted() and state["epoch"] < config.epochs:
            self.say(f"stopping early: no better {state['best']['metric']} for {config.patience} epochs "
                     f"(best {state['best']['value']:.4g} in epoch {state['best']['epoch'] + 1})")
        return self._finish()

    def _patience_exhausted(self) -> bool:
        best, epoch = self.state["best"], self.state["epoch"]
        if not self.config.patience or epoch == 0:
            return False
        since = epoch if best["epoch"] is None else epoch - 1 - best["epoch"]
        return since >= self.config.patience

    def _train_epoch(self, stop_after_steps: int | None) -> bool:
        """Run the rest of the current epoch; True when stopped at ``stop_after_steps``."""
        config, state = self.config, self.state
        epoch = state["epoch"]
        order = batches.shard(batches.epoch_order(len(self.data.train), config.seed, epoch),
                              self.processes.rank, self.world)
        self.progress.start_epoch(epoch, self.steps_per_epoch, state["batch"])
        totals = state["epoch_totals"]
        generator = torch.Generator()  # the transforms draw on the CPU
        self.model.train()
        started = time.perf_counter()
        remaining = order[state["batch"] * self.batch_size :]
        for batch in self.task.batches(self.data.train, remaining, self.batch_size, config):
            count = len(batch[1])
            loss, figures = self._step(batch, generator)
            state["batch"] += 1
            state["step"] += 1
            totals["samples"] += count
            for key, value in figures.items():
                totals["sums"][key] = totals["sums"].get(key, 0.0) + value * count
            self.progress.update(count * self.world, loss)
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

    def _step(self, batch, generator: torch.Generator) -> tuple[float, dict]:
        """One optimiser step on a batch; returns (mean loss over all processes, this process's
        figures of the batch: the objective as "loss" and every other term by name)."""
        config, state, rank = self.config, self.state, self.processes.rank
        lr = self._learning_rate(state["step"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        generator.manual_seed(batches.derived_seed(config.seed, batches.AUGMENT, rank, state["step"]))
        torch.manual_seed(batches.derived_seed(config.seed, batches.DROPOUT, rank, state["step"]))
        context = Step(self.device, generator, config, self.data, state["step"])
        try:
            arguments = self.task.prepare(batch, context)
            with torch.autocast(self.device.type, dtype=autocast_dtype(self.device), enabled=config.amp):
                terms = self.objective(*arguments)
            loss = sum(value for key, value in terms.items() if key.startswith("loss"))
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not _is_out_of_memory(error):
                raise
            raise TrainingError(self._out_of_memory_message()) from None
        # Every process checks the mean loss, so that all stop together, before any update.
        loss_value = float(sum_over_processes(loss.detach().double().cpu().reshape(1), self.processes)) / self.world
        if not math.isfinite(loss_value):
            parts = {key: float(value.detach()) for key, value in terms.items() if key.startswith("loss")}
            raise TrainingError(self._non_finite_message(loss_value, lr, parts))
        if config.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        names = ["loss", *(key for key in terms if key != "loss")]
        values = torch.stack([loss.detach().float(), *(terms[key].detach().float() for key in names[1:])]).tolist()
        return loss_value, dict(zip(names, values))

    def _learning_rate(self, step: int) -> float:
        config = self.config
        warmup = max(config.warmup_steps, round(config.warmup_epochs * self.steps_per_epoch))
        return learning_rate(config.schedule, config.lr, step, self.total_steps, self.steps_per_epoch,
                             warmup_steps=warmup, milestones=config.milestones(), gamma=config.lr_gamma)

    def _end_epoch(self) -> None:
        config, state = self.config, self.state
        totals = state["epoch_totals"]
        names = sorted(totals["sums"])
        summed = sum_over_processes(
            torch.tensor([totals["samples"], *(totals["sums"][name] for name in names)], dtype=torch.float64),
            self.processes).tolist()
        samples = max(summed[0], 1)
        broadcast_buffers(self.model, self.processes)
        val = self.task.evaluate(self.model, self.data.val, self.data, config, self.device)
        record = {"epoch": state["epoch"], "step": state["step"]}
        record.update({f"train_{name}": value / samples for name, value in zip(names, summed[1:])})
        record.update({f"val_{key}": val.get(key) for key in self.task.recorded})
        record.update(lr=self._learning_rate(max(state["step"] - 1, 0)), seconds=totals["seconds"],
                      images_per_second=summed[0] / max(totals["seconds"], 1e-9))
        state["history"].append(record)
        value = val.get(self.task.monitor)
        best = state["best"]
        improved = value is not None and math.isfinite(value) and (best["value"] is None or value > best["value"])
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
        self.progress.end_epoch(record, self.task.recorded, improved)

    def _finish(self) -> RunResult:
        """Finish the best model (closed-form stages), test it and write the report."""
        barrier(self.processes)  # best.pt is complete before anyone reads it
        best_path = self.run_dir / BEST
        best = load_checkpoint(best_path) if best_path.exists() else None
        if best is not None:
            self.model.load_state_dict(best["model"])
        if hasattr(self.task, "finish"):
            self.task.finish(self.model, self.data, self.config)
            if self.processes.is_main and best is not None:
                save_checkpoint({**best, "model": self.model.state_dict()}, best_path)
        test = self.task.evaluate(self.model, self.data.test, self.data, self.config, self.device)
        report = {}
        if self.processes.is_main:
            report = write_report(self.run_dir, self.task, self.config, self.data, self.state, test, self.processes)
            self.say(f"test {self.task.summary(test)} (best epoch {(self.state['best']['epoch'] or 0) + 1}); "
                     f"run folder {self.run_dir}")
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
        state = self.state
        return {
            "format": CHECKPOINT_FORMAT,
            "task": self.task.name,
            "config": self.config.to_dict(),
            "dataset": self.task.state(self.data),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "schedule": {"step": state["step"], "lr": self._learning_rate(state["step"])},
            "epoch": state["epoch"],
            "batch": state["batch"],
            "step": state["step"],
            "best": dict(state["best"]),
            "epoch_totals": {**state["epoch_totals"], "sums": dict(state["epoch_totals"]["sums"])},
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

    def _non_finite_message(self, value: float, lr: float, parts: dict) -> str:
        terms = f" ({', '.join(f'{k} {v:.4g}' for k, v in parts.items())})" if len(parts) > 1 else ""
        return (f"loss is {value}{terms} at {self._where()} of run {self.run_dir}; {self._last_good()}. "
                f"Lower the learning rate (now {lr:.3g}; --resume {self.run_dir} --lr {lr / 10:.3g}), set "
                "clip_grad_norm (--clip-grad-norm 1), or check the data for bad values")

    def _out_of_memory_message(self) -> str:
        smaller = max(self.config.batch_size // 2, self.world)
        return (f"out of memory on {self.device} with batch size {self.config.batch_size} "
                f"({self.batch_size} per process) at {self._where()}; {self._last_good()} (untouched). "
                f"Use a smaller batch size, e.g. --batch-size {smaller}, and start again")


class Objective(nn.Module):
    """The task's losses as a module's forward pass: what DistributedDataParallel and
    `torch.compile` wrap, so that detectors' ``model.loss(...)`` is synchronised like ``model(x)``."""

    def __init__(self, task, model: nn.Module) -> None:
        super().__init__()
        self.task, self.model = task, model

    def forward(self, *arguments) -> dict:
        return self.task.losses(self.model, *arguments)


def _optimizer(config: RunConfig, model: nn.Module, task) -> torch.optim.Optimizer:
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
    """The running sums of an epoch's training figures: samples seen, seconds, and per figure
    the sum of (batch value × batch size)."""
    return {"samples": 0, "seconds": 0.0, "sums": {}}


def _upgrade_totals(totals: dict) -> dict:
    """Totals of a checkpoint written before figures were named (loss_sum, correct, images)."""
    if "sums" in totals:
        return totals
    return {"samples": totals["images"], "seconds": totals["seconds"],
            "sums": {"loss": totals["loss_sum"], "top1": float(totals["correct"])} if totals["images"] else {}}


def _has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in (LAST, PREVIOUS))


@dataclass
class ClaimedRunDir:
    """A run folder this process holds an exclusive lock on until the ``with`` block ends."""

    path: Path
    descriptor: int

    def __enter__(self) -> ClaimedRunDir:
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.descriptor)  # releases the lock


def claim(run_dir: Path) -> ClaimedRunDir:
    """Lock the folder ``run_dir`` for this process (``flock`` on the folder itself, released when
    the process ends, however it ends). Raises ValueError when another process holds it."""
    descriptor = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise ValueError(f"run folder {run_dir} is in use by another training process; wait for it, "
                         "or choose another name") from None
    return ClaimedRunDir(run_dir, descriptor)


def _claim(run_dir: Path, processes: Processes):
    """Process 0's claim on an existing run folder (resume); the others hold nothing."""
    return claim(run_dir) if processes.is_main else contextlib.nullcontext()


def new_run_dir(config: RunConfig) -> ClaimedRunDir:
    """Create and claim ``runs_dir/name``; a derived name gets the first free ``-2``, ``-3``…

    A given name that holds a run (a checkpoint) or that another process is training into is
    refused (ValueError naming the folder); an empty or checkpoint-less folder is taken over.
    """
    runs_dir = Path(config.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    if config.name:
        run_dir = runs_dir / config.name
        run_dir.mkdir(exist_ok=True)
        claimed = claim(run_dir)
        if _has_checkpoint(run_dir):
            claimed.__exit__()
            raise ValueError(f"run folder {run_dir} already holds a run; resume it (--resume {run_dir}) "
                             "or choose another name")
        return claimed
    base = config.default_name()
    for number in range(1, 100_000):
        run_dir = runs_dir / (base if number == 1 else f"{base}-{number}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return claim(run_dir)
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
