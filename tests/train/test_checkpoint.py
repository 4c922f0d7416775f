"""Checkpoints: weights_only loading, corrupt files named, the previous kept, kills during writes."""

import signal
from pathlib import Path

import pytest
import torch

from cnnkit.models.weights import CorruptCheckpointError
from cnnkit.train.checkpoint import CHECKPOINT_FORMAT, LAST, PREVIOUS, load_checkpoint, load_latest, save_checkpoint
from conftest import run_python


def checkpoint(step: int) -> dict:
    return {"format": CHECKPOINT_FORMAT, "config": {"seed": 0}, "model": {"w": torch.full((64, 64), float(step))},
            "optimizer": {"state": {}, "param_groups": []}, "epoch": 0, "batch": step, "step": step}


def test_saved_checkpoint_loads_with_weights_only(tmp_path):
    save_checkpoint(checkpoint(3), tmp_path / LAST)
    state = torch.load(tmp_path / LAST, weights_only=True)
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.full((64, 64), 3.0))


def test_previous_is_kept_and_truncated_last_falls_back(tmp_path):
    save_checkpoint(checkpoint(1), tmp_path / LAST, keep_previous=True)
    save_checkpoint(checkpoint(2), tmp_path / LAST, keep_previous=True)
    assert load_checkpoint(tmp_path / PREVIOUS)["step"] == 1
    last = tmp_path / LAST
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CorruptCheckpointError, match=f"corrupt checkpoint {last}"):
        load_checkpoint(last)
    warnings = []
    state, path = load_latest(tmp_path, warn=warnings.append)
    assert path == tmp_path / PREVIOUS and state["step"] == 1
    assert len(warnings) == 1 and f"corrupt checkpoint {last}" in warnings[0]


def test_every_checkpoint_corrupt_is_an_error(tmp_path):
    (tmp_path / LAST).write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CorruptCheckpointError, match="no good checkpoint"):
        load_latest(tmp_path, warn=lambda message: None)


def test_foreign_file_is_not_a_training_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(CorruptCheckpointError, match="not a cnnkit training checkpoint"):
        load_checkpoint(tmp_path / "w.pt")


def test_sigkill_between_write_and_rename_keeps_the_old_checkpoint(tmp_path):
    save_checkpoint(checkpoint(1), tmp_path / LAST)
    code = f"""
import os, signal, torch
import cnnkit.files
from cnnkit.train.checkpoint import save_checkpoint, CHECKPOINT_FORMAT
def killed(source, target):
    if str(target).endswith("{LAST}"):
        os.kill(os.getpid(), signal.SIGKILL)
    os.rename(source, target)
cnnkit.files.os.replace = killed
save_checkpoint({{"format": CHECKPOINT_FORMAT, "config": {{}}, "model": {{"w": torch.ones(1000)}},
                 "optimizer": {{}}, "epoch": 0, "batch": 2, "step": 2}}, {str(tmp_path / LAST)!r}, keep_previous=True)
"""
    result = run_python(code, tmp_path, check=False)
    assert result.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / LAST)["step"] == 1
    assert sorted(p.name for p in Path(tmp_path).iterdir() if not p.name.startswith(".")) == [LAST, PREVIOUS]
