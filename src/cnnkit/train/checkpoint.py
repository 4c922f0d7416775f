"""Checkpoints that survive a kill at any moment and load without unpickling code.

A checkpoint is a dict of tensors and plain Python values only (state dicts, numbers, strings,
lists, dicts), written with `torch.save` and read with ``torch.load(weights_only=True)``:
loading one never runs code. It holds

    format, task (the task's name, "classification" when absent: checkpoints written before
    there were other tasks), config (the task's RunConfig.to_dict()), dataset (the task's
    state: for classification classes, mean, std, image_size, in_channels),
    model, optimizer, scaler (state dicts), schedule {"step", "lr"},
    epoch, batch (batches done in that epoch), step (optimiser steps done in all),
    best {"metric", "value", "epoch"}, epoch_totals (running training sums of the epoch),
    history (the metrics.jsonl records of finished epochs), rng {"seed", "world_size",
    "torch_cpu", "torch_cuda"}.

The engine draws every random number from generators seeded by (seed, epoch, step)
(`cnnkit.train.batches`), so epoch, batch and step fix the data order and augmentation of the
rest of the run; the torch generator states are kept for anything outside the engine.

Each write goes to a temporary file, is fsynced and renamed over the target
(`cnnkit.files.atomic_write`). Before ``last.pt`` is replaced, the current one is hard-linked
to ``previous.pt``, so a damaged ``last.pt`` (a disk error, a copy cut short) still leaves one
good checkpoint to resume from.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from cnnkit.files import atomic_write
from cnnkit.models.weights import CorruptCheckpointError, load_torch_file

CHECKPOINT_FORMAT = "cnnkit-checkpoint-1"
LAST, PREVIOUS, BEST = "last.pt", "previous.pt", "best.pt"
REQUIRED_KEYS = ("format", "config", "model", "optimizer", "epoch", "batch", "step")


def save_checkpoint(state: dict, path: str | os.PathLike, keep_previous: bool = False) -> Path:
    """Write ``state`` to ``path`` atomically; with ``keep_previous`` the file it replaces is
    kept as ``previous.pt`` beside it (a hard link, or a copy where links are not possible)."""
    path = Path(path)
    if keep_previous and path.exists():
        link_checkpoint(path, path.parent / PREVIOUS)
    with atomic_write(path) as temporary:
        torch.save(state, temporary)
    return path


def link_checkpoint(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Make ``target`` name the same file as ``source`` (a hard link; a copy where links are not
    possible), atomically replacing any old ``target``: no second serialisation of the state."""
    target = Path(target)
    with atomic_write(target) as temporary:
        temporary.unlink()
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
    return target


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Raises FileNotFoundError for a missing file and `CorruptCheckpointError`
    ("corrupt checkpoint PATH: ...") for a truncated or damaged one, or one that is not a
    cnnkit training checkpoint; `UnsafeCheckpointError` when it would need unpickling classes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return check_checkpoint(load_torch_file(path, trusted=False), path)


def check_checkpoint(state, path: Path) -> dict:
    """``state`` (read from ``path``) when it is a training checkpoint this cnnkit reads, else
    `CorruptCheckpointError` saying what it is instead."""
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        keys = ", ".join(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise CorruptCheckpointError(
            f"corrupt checkpoint {path}: not a cnnkit training checkpoint (has {keys}); "
            "for plain weights use cnnkit.models.weights.load_weights"
        )
    if state["format"] != CHECKPOINT_FORMAT:
        raise CorruptCheckpointError(
            f"corrupt checkpoint {path}: format {state['format']!r}, this cnnkit reads {CHECKPOINT_FORMAT!r}"
        )
    return state


def load_latest(run_dir: str | os.PathLike, warn=print) -> tuple[dict, Path]:
    """The newest readable checkpoint of a run folder: ``last.pt``, else ``previous.pt``.

    A corrupt ``last.pt`` is reported through ``warn`` ("corrupt checkpoint PATH: ...; resuming
    from previous.pt") and skipped. Raises FileNotFoundError when the folder has neither file
    and `CorruptCheckpointError` when every one is damaged.
    """
    run_dir = Path(run_dir)
    candidates = [run_dir / LAST, run_dir / PREVIOUS]
    errors = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path)
        except CorruptCheckpointError as error:
            errors.append(str(error))
            continue
        for message in errors:
            warn(f"{message}; resuming from {path}")
        return state, path
    if errors:
        raise CorruptCheckpointError("; ".join(errors) + "; no good checkpoint left to resume from")
    raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from (expected {LAST} or {PREVIOUS})")
