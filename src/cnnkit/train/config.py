"""The configuration of a training run: one dataclass, every field a plain JSON value.

The command line exposes each field as ``--field-name`` (``batch_size`` → ``--batch-size``);
a run folder keeps it as ``config.json`` and every checkpoint carries it, so a run can be
resumed, evaluated or reproduced from its folder alone.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """What to train, on what, and how. Defaults train the lecture's sample network on
    ``digits`` to ≥ 97 % test accuracy in a few seconds on two CPU cores.

    model, data, data_root, download, image_size, skip_bad: the architecture
        (`cnnkit.models.create_model` name) and the dataset
        (`cnnkit.data.load_dataset(data, data_root, download=..., image_size=..., skip_bad=...)`).
    epochs, batch_size: passes over the training set; images per optimiser step, summed over
        all processes in a distributed run (each of W processes takes batch_size / W).
    optimizer: "sgd" (momentum, nesterov) or "adamw"; lr is the peak learning rate;
        weight_decay is L2 for SGD and decoupled for AdamW.
    schedule: the learning rate after warm-up, as a function of the step (`schedules.py`):
        "constant", "step" (× lr_gamma at each epoch in lr_milestones; default half and three
        quarters of the epochs, He et al.'s 82 and 123 of 164), "cosine" (to 0) or "onecycle".
    warmup_epochs: linear warm-up from lr/warmup_steps to lr (not used by "onecycle", which
        has its own).
    label_smoothing: ε of the cross-entropy's smoothed targets; clip_grad_norm: the largest
        global L2 norm of the gradient (None: no clipping).
    amp: mixed precision (bfloat16 autocast on the CPU; float16 with loss scaling on CUDA).
    compile: `torch.compile` the model (pays on runs longer than a few minutes).
    channels_last: feed batches in channels_last memory format (the models' weights are).
    seed: every random choice (initialisation, data order, augmentation, dropout) follows it.
    augmentation: a `cnnkit.data.transforms` preset name, "none", or None for the dataset's
        recommendation.
    runs_dir, name: the run folder is runs_dir/name; name None derives a new one
        ("sample_net-digits", then "-2", "-3"…).
    weights: a pretrained weights file loaded before training with the classifier reset
        (`load_weights(..., reset_head=True)`) for fine-tuning on another number of classes.
    device: "auto" (CUDA when available), "cpu" or "cuda".
    workers: DataLoader worker processes for datasets streamed from disk.
    checkpoint_every_steps, checkpoint_every_seconds: besides the end of each epoch, write the
        last checkpoint after this many steps or seconds (0: never), so a kill loses little.
    """

    model: str = "sample_net"
    data: str = "digits"
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None
    skip_bad: bool = False
    epochs: int = 12
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    lr_milestones: list[int] | None = None
    lr_gamma: float = 0.1
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    amp: bool = False
    compile: bool = False
    channels_last: bool = True
    seed: int = 0
    augmentation: str | None = None
    runs_dir: str = "runs"
    name: str | None = None
    weights: str | None = None
    device: str = "auto"
    workers: int = 2
    checkpoint_every_steps: int = 0
    checkpoint_every_seconds: float = 60.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field for a value outside its range or choices."""
        choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "device": DEVICES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None, got {self.clip_grad_norm!r}")
        for name in ("warmup_epochs", "weight_decay", "momentum", "checkpoint_every_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)!r}")
        if self.checkpoint_every_steps < 0 or self.workers < 0:
            raise ValueError("checkpoint_every_steps and workers must be ≥ 0")
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..")):
            raise ValueError(f"name must be a plain folder name, got {self.name!r}")

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict; ``TrainConfig.from_dict`` gives the config back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build a config from ``to_dict``'s output (missing fields take their defaults).

        An unknown field raises ValueError naming it and the closest known field.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [key for key in values if key not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown TrainConfig field {', '.join(hints)}")
        values = dict(values)
        if values.get("lr_milestones") is not None:
            values["lr_milestones"] = list(values["lr_milestones"])
        return cls(**values)
