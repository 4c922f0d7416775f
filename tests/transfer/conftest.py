"""Shared fixtures: a small "pretrained" ResNet-20 saved as weights, the shapes dataset."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # transfer_helpers, beside this file
from transfer_helpers import settle_batchnorm  # noqa: E402

from cnnkit.data import Dataset, load_dataset
from cnnkit.models import create_model
from cnnkit.models.weights import save_weights


@pytest.fixture(scope="session")
def shapes() -> Dataset:
    return load_dataset("shapes")


@pytest.fixture(scope="session")
def pretrained_file(tmp_path_factory, shapes) -> Path:
    """A ResNet-20 with random filters whose batch norm has seen 256 shapes images, as safetensors
    with cnnkit's metadata (architecture, normalisation): stands in for real pretrained weights."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3)
    x, _ = shapes.train.batch(torch.arange(256))
    mean, std = torch.tensor(shapes.mean)[:, None, None], torch.tensor(shapes.std)[:, None, None]
    settle_batchnorm(model, (x - mean) / std)
    path = tmp_path_factory.mktemp("pretrained") / "resnet20-shapes.safetensors"
    save_weights(model, path, {"mean": shapes.mean, "std": shapes.std, "class_names": list(shapes.classes)})
    return path
