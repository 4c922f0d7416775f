"""ConvBlock, FullyConnectedBlock and the activation and pooling lookups."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit.nn.layers import (
    ACTIVATIONS,
    ConvBlock,
    FullyConnectedBlock,
    activation_layer,
    activation_name,
    pooling_kind,
    pooling_layer,
)

FUNCTIONAL = {
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / 2**0.5)),
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "silu": lambda x: x / (1 + torch.exp(-x)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_by_name_computes_its_formula_and_names_itself_back(name):
    x = torch.linspace(-4, 4, 101)
    layer = activation_layer(name)
    torch.testing.assert_close(layer(x), FUNCTIONAL[name](x), atol=1e-6, rtol=1e-5)
    assert activation_name(layer) == name


def test_activation_none_unknown_and_non_default_settings():
    assert activation_layer("none") is None
    with pytest.raises(ValueError, match="unknown activation 'rleu'.*relu"):
        activation_layer("rleu")
    with pytest.raises(ValueError, match="negative_slope"):
        activation_name(nn.LeakyReLU(0.2))
    assert activation_name(nn.ReLU(inplace=True)) == "relu"
    assert activation_name(nn.Conv2d(1, 1, 1)) is None


def test_pooling_layers_compute_max_mean_and_l2_of_each_window():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    windows = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(1, 1, 2, 2, 4)  # (N, C, H', W', K·K)
    torch.testing.assert_close(pooling_layer("max", 2)(x), windows.amax(-1))
    torch.testing.assert_close(pooling_layer("avg", 2)(x), windows.mean(-1))
    torch.testing.assert_close(pooling_layer("l2", 2)(x), windows.pow(2).sum(-1).sqrt())
    for kind in ("max", "avg", "l2"):
        assert pooling_kind(pooling_layer(kind, 3, 1)) == kind
    assert pooling_kind(nn.AdaptiveAvgPool2d(1)) is None


def test_pooling_layer_rejects_unknown_kind_and_impossible_padding():
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        pooling_layer("median", 2)
    with pytest.raises(ValueError, match="more than half the window"):
        pooling_layer("max", 2, padding=2)
    with pytest.raises(ValueError, match="L2 pooling takes no padding"):
        pooling_layer("l2", 3, padding=1)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(6, 20),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    pool=st.sampled_from([None, "max", "avg", "l2"]),
)
def test_conv_block_output_shape_follows_the_size_formula(size, kernel, stride, padding, pool):
    block = ConvBlock(2, 3, kernel, stride, padding, activation="tanh", pool=pool)
    conv_size = (size + 2 * padding - kernel) // stride + 1
    expected = conv_size // 2 if pool else conv_size
    assume(expected >= 1)
    assert block(torch.randn(1, 2, size, size)).shape == (1, 3, expected, expected)


def test_conv_block_is_conv_norm_activation_pool_in_order():
    block = ConvBlock(3, 8, 5, padding=2, batch_norm=True, activation="relu", pool="max")
    assert [name for name, _ in block.named_children()] == ["conv", "norm", "act", "pool"]
    assert block.conv.bias is None  # batch norm's shift replaces the bias
    x = torch.randn(2, 3, 10, 10)
    block.eval()
    expected = F.max_pool2d(F.relu(block.norm(block.conv(x))), 2)
    torch.testing.assert_close(block(x), expected)
    # K·K·C_in·n_K weights, no bias, 2·n_K batch-norm scale and shift
    assert sum(p.numel() for p in block.parameters()) == 5 * 5 * 3 * 8 + 2 * 8


def test_conv_block_without_options_has_a_bias_and_no_extra_modules():
    block = ConvBlock(1, 6, 5, activation="none")
    assert [name for name, _ in block.named_children()] == ["conv"]
    assert sum(p.numel() for p in block.parameters()) == 5 * 5 * 1 * 6 + 6


def test_fully_connected_block_computes_activation_of_affine_map():
    block = FullyConnectedBlock(4, 3, activation="sigmoid")
    x = torch.randn(5, 4)
    torch.testing.assert_close(block(x), torch.sigmoid(x @ block.linear.weight.T + block.linear.bias))
    with_norm = FullyConnectedBlock(4, 3, batch_norm=True)
    assert [name for name, _ in with_norm.named_children()] == ["linear", "norm", "act"]
    assert with_norm.linear.bias is None
