import os
import subprocess
import sys
from pathlib import Path

import torch

from cnnkit.train import TrainConfig


def small_config(runs_dir, name, **overrides) -> TrainConfig:
    """Two short epochs of sample_net on digits (20 steps of 64 images each), no timed saves."""
    values = dict(epochs=2, batch_size=64, runs_dir=str(runs_dir), name=name, checkpoint_every_seconds=0.0)
    values.update(overrides)
    return TrainConfig(**values)


def run_python(code: str, cwd, check=True, timeout=120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the same one, the same thread count)."""
    environment = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def final_state(run_dir) -> dict:
    return torch.load(Path(run_dir) / "last.pt", weights_only=True)


def assert_same_tensors(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{key} differs"
