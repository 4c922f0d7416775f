"""cnnkit's AlexNet, VGG, GoogLeNet and ResNets against torchvision.models, the reference.

A torchvision state dict must load into the cnnkit model of the same name with strict
``load_state_dict`` and give the same eval-mode outputs (max abs difference ≤ 1e-4). The CIFAR
ResNets must take the akamaster/pytorch_resnet_cifar10 state dicts the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models
from torch import nn

from cnnkit.models import create_model

TORCHVISION_NAMES = [
    "alexnet",
    "googlenet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]

# name → input side: small where adaptive pooling allows, so the suite stays fast on a CPU.
OUTPUT_CHECKS = {
    "alexnet": 224,
    "vgg11": 32,
    "vgg11_bn": 32,
    "vgg16_bn": 32,
    "googlenet": 96,
    "resnet18": 96,
    "resnet50": 64,
}

WEIGHTS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "weights"
CIFAR_FILES = {
    "resnet20": "resnet20-12fca82f.th",
    "resnet32": "resnet32-d509ac18.th",
    "resnet44": "resnet44-014dd654.th",
    "resnet56": "resnet56-4bfd9763.th",
}


def _torchvision_model(name: str) -> nn.Module:
    kwargs = {"init_weights": True} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(weights=None, **kwargs)


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_state_dict_names_and_shapes_equal_torchvision(name):
    with torch.device("meta"):  # no memory, no initialisation: only names and shapes
        reference = _torchvision_model(name).state_dict()
        ours = create_model(name).state_dict()
    assert {key: tuple(value.shape) for key, value in ours.items()} == {
        key: tuple(value.shape) for key, value in reference.items()
    }


def _calibrate_batch_norm(model: nn.Module, side: int) -> None:
    """Random affine parameters and running statistics from one batch, so that eval-mode
    activations have a meaningful scale and a wrong ε or a skipped layer would show."""
    generator = torch.Generator().manual_seed(1)
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    with torch.no_grad():
        for norm in norms:
            norm.weight.uniform_(0.5, 1.5, generator=generator)
            norm.bias.normal_(0.0, 0.2, generator=generator)
            norm.momentum = 1.0  # running statistics := this batch's statistics
        model.train()
        model(torch.randn(4, 3, side, side, generator=generator))
    model.eval()


@pytest.mark.parametrize("name", sorted(OUTPUT_CHECKS))
def test_torchvision_weights_load_strictly_and_give_the_same_outputs(name):
    side = OUTPUT_CHECKS[name]
    torch.manual_seed(0)
    reference = _torchvision_model(name)
    _calibrate_batch_norm(reference, side)
    with torch.device("meta"):  # skip initialising weights that are replaced at once
        model = create_model(name)
    model.load_state_dict(reference.state_dict(), assign=True)  # strict: names and shapes checked
    model.eval()
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, actual = reference(x), model(x)
    assert actual.shape == expected.shape == (2, 1000)
    assert expected.std() > 1e-2, "reference output too small for the comparison to mean anything"
    assert (actual - expected).abs().max() <= 1e-4


def test_googlenet_transform_input_matches_torchvision():
    torch.manual_seed(0)
    reference = torchvision.models.googlenet(weights=None, init_weights=True, aux_logits=False, transform_input=True)
    _calibrate_batch_norm(reference, 64)
    model = create_model("googlenet", aux_logits=False, transform_input=True)
    model.load_state_dict(reference.state_dict())
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max() <= 1e-4


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(CIFAR_FILES))
def test_cifar_resnet_weights_load_strictly(name):
    path = WEIGHTS / CIFAR_FILES[name]
    if not path.exists():
        pytest.skip(f"{path} absent")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    model = create_model(name)
    model.load_state_dict(state_dict)  # strict: every key and shape matches
    assert model.linear.weight.shape == (10, 64)
