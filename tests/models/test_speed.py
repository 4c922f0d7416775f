"""Batch norm folded into convolutions gives the same outputs, and refuses when it cannot."""

import pytest
import torch
from torch import nn

from cnnkit.models import create_model
from cnnkit.models.speed import fold_batch_norm, prepare_for_inference


def randomise_batch_norms(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.shortcut = nn.Sequential(nn.Conv2d(4, 4, 1, stride=1, bias=False), nn.BatchNorm2d(4))

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) + self.shortcut(x))


def test_folded_model_matches_and_has_no_batch_norm_left():
    torch.manual_seed(0)
    model = randomise_batch_norms(
        nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                      Residual())
    )
    x = torch.randn(2, 3, 12, 12)
    folded = fold_batch_norm(model, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original untouched
    y = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(folded(y), model(y), atol=1e-5, rtol=1e-5)


def test_batch_norm_after_an_in_place_activation_is_not_folded():
    torch.manual_seed(0)
    # conv -> in-place ReLU -> batch norm: the same tensor object, but not the conv's output.
    model = randomise_batch_norms(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True),
                                                nn.BatchNorm2d(4)))
    x = torch.randn(2, 3, 8, 8)
    folded = fold_batch_norm(model, x)
    assert isinstance(folded[2], nn.BatchNorm2d)
    torch.testing.assert_close(folded(x), model(x))


class ConvFeedsTwo(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y  # the conv output is used twice: folding would be wrong


def test_conv_output_used_elsewhere_is_refused():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="conv"):
        fold_batch_norm(randomise_batch_norms(ConvFeedsTwo()), torch.randn(2, 3, 8, 8))


def test_prepare_for_inference_keeps_outputs_and_drops_gradients():
    torch.manual_seed(0)
    model = randomise_batch_norms(create_model("resnet20"))
    prepared = prepare_for_inference(model, (3, 32, 32))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())
    assert not any(p.requires_grad for p in prepared.parameters())
    assert model.training is False and any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(prepared(x), model(x), atol=1e-4, rtol=1e-4)
