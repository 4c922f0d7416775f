"""The configuration of a training run: dataclasses whose every field is a plain JSON value.

`RunConfig` holds what the engine owns (epochs, batches, optimiser, schedule, device, AMP,
checkpoints, early stopping, the run folder); each task's config adds its own fields to it:
`TrainConfig` for classification here, `cnnkit.detection.DetectionConfig`,
`cnnkit.segmentation.SegmentationConfig` and the Mask R-CNN config in their packages.
The command line exposes each field as ``--field-name`` (``batch_size`` → ``--batch-size``);
a run folder keeps it as ``config.json`` and every checkpoint carries it, so a run can be
resumed, evaluated or reproduced from its folder alone.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path

from cnnkit.train.schedules import default_milestones

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
RESUMABLE = ("epochs", "lr", "device", "workers", "threads", "checkpoint_every_steps", "checkpoint_every_seconds",
             "patience", "compile")
"""Fields that may change when a run is resumed; the others fix the run's numbers."""


@dataclass
class RunConfig:
    """How to train, whatever the task: the engine's fields (`cnnkit.train.engine`).

    epochs, batch_size: passes over the training set; images per optimiser step, summed over
        all processes in a distributed run (each of W processes takes batch_size / W).
    optimizer: "sgd" (momentum, nesterov) or "adamw"; lr is the peak learning rate;
        weight_decay is L2 for SGD and decoupled for AdamW.
    schedule: the learning rate after warm-up, as a function of the step (`schedules.py`):
        "constant", "step" (× lr_gamma at each epoch in lr_milestones; default `milestones()`),
        "cosine" (to 0) or "onecycle".
    warmup_epochs, warmup_steps: linear warm-up from lr/W to lr over W = max(warmup_steps,
        warmup_epochs × steps per epoch) steps (not used by "onecycle", which has its own).
    clip_grad_norm: the largest global L2 norm of the gradient (None: no clipping).
    amp: mixed precision (bfloat16 autocast on the CPU; float16 with loss scaling on CUDA).
    compile: `torch.compile` the model (pays on runs longer than a few minutes).
    seed: every random choice (initialisation, data order, augmentation, dropout) follows it.
    patience: stop after this many epochs without a better validation figure (0: never).
    runs_dir, name: the run folder is runs_dir/name; name None derives a new one
        (`default_name()`, then "-2", "-3"…).
    device: "auto" (CUDA when available), "cpu" or "cuda".
    workers: DataLoader worker processes for datasets streamed from disk.
    threads: torch's intra-op threads (None: torch's default); on a CPU shared with other work
        fewer threads can be much faster.
    checkpoint_every_steps, checkpoint_every_seconds: besides the end of each epoch, write the
        last checkpoint after this many steps or seconds (0: never), so a kill loses little.
    """

    epochs: int = 12
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    warmup_steps: int = 0
    lr_milestones: list[int] | None = None
    lr_gamma: float = 0.1
    clip_grad_norm: float | None = None
    amp: bool = False
    compile: bool = False
    seed: int = 0
    patience: int = 0
    runs_dir: str = "runs"
    name: str | None = None
    device: str = "auto"
    workers: int = 2
    threads: int | None = None
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
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None, got {self.clip_grad_norm!r}")
        for name in ("warmup_epochs", "warmup_steps", "weight_decay", "momentum", "checkpoint_every_seconds",
                     "checkpoint_every_steps", "workers", "patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be ≥ 1 or None, got {self.threads!r}")
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..")):
            raise ValueError(f"name must be a plain folder name, got {self.name!r}")

    def default_name(self) -> str:
        """The run folder's name when none is given."""
        return "run"

    def task(self):
        """A fresh task object for a run of this config (`cnnkit.train.task`)."""
        raise NotImplementedError(f"{type(self).__name__} names no task; pass task= to train")

    def milestones(self) -> list[int]:
        """The epochs at which the "step" schedule multiplies the rate by lr_gamma: lr_milestones,
        or half and three quarters of the epochs (He et al.'s 82 and 123 of 164)."""
        return list(self.lr_milestones) if self.lr_milestones else default_milestones(self.epochs)

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict; ``from_dict`` gives the config back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
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
            raise ValueError(f"unknown {cls.__name__} field {', '.join(hints)}")
        values = dict(values)
        if values.get("lr_milestones") is not None:
            values["lr_milestones"] = list(values["lr_milestones"])
        return cls(**values)


@dataclass
class TrainConfig(RunConfig):
    """What to train, on what, and how, for image classification. Defaults train the lecture's
    sample network on ``digits`` to ≥ 97 % test accuracy in a few seconds on two CPU cores.

    model, data, data_root, download, image_size, skip_bad: the architecture
        (`cnnkit.models.create_model` name) and the dataset
        (`cnnkit.data.load_dataset(data, data_root, download=..., image_size=..., skip_bad=...)`).
    label_smoothing: ε of the cross-entropy's smoothed targets.
    channels_last: feed batches in channels_last memory format (the models' weights are).
    augmentation: a `cnnkit.data.transforms` preset name, "none", or None for the dataset's
        recommendation.
    weights: a pretrained weights file loaded before training with the classifier reset
        (`load_weights(..., reset_head=True)`) for fine-tuning on another number of classes.
    The engine's fields are `RunConfig`'s.
    """

    model: str = "sample_net"
    data: str = "digits"
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None
    skip_bad: bool = False
    label_smoothing: float = 0.0
    channels_last: bool = True
    augmentation: str | None = None
    weights: str | None = None

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")

    def task(self):
        from cnnkit.train.task import ClassificationTask

        return ClassificationTask()

    def default_name(self) -> str:
        return f"{self.model}-{Path(self.data).name or 'data'}"
