"""Helpers of the transfer tests (a module of its own: every test folder has a conftest)."""

from pathlib import Path

import torch

from cnnkit.data import Dataset
from cnnkit.data.dataset import ImageSet, build_dataset

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CIFAR_WEIGHTS = SHARED_DATA / "weights" / "resnet20-12fca82f.th"


def settle_batchnorm(model, images: torch.Tensor) -> None:
    """Set every batch-norm layer's running statistics to the exact statistics of ``images``
    (cumulative averaging, one full batch), as if it had been pretrained on them."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()


def tiny_dataset(name: str, images: torch.Tensor, labels: torch.Tensor, split=(0.6, 0.2, 0.2)) -> Dataset:
    """A Dataset from tensors, split in order (each split keeps every class when labels cycle)."""
    n = len(labels)
    a, b = int(n * split[0]), int(n * (split[0] + split[1]))
    parts = [ImageSet(labels[s], images=images[s]) for s in (slice(0, a), slice(a, b), slice(b, n))]
    return build_dataset(name, [str(c) for c in range(int(labels.max()) + 1)], parts)
