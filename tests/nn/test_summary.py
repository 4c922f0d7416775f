"""The per-layer summary against independent references: torchvision's published multiply-adds,
PyTorch's FLOP counter, sum(p.numel()), and receptive fields measured by back-propagation."""

import json
import math

import pytest
import torch
import torchvision.models
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnkit.nn import LENET_DESCRIPTION, build_network, depth, summarize

# torchvision's model documentation, "GFLOPS" column at 224×224 (a multiply-add counted once).
PUBLISHED_GMACS = {"alexnet": 0.714, "resnet18": 1.81, "resnet50": 4.09, "googlenet": 1.50}


def _torchvision(name: str, device: str = "meta") -> nn.Module:
    options = {"init_weights": False} if name == "googlenet" else {}
    with torch.device(device):
        return getattr(torchvision.models, name)(weights=None, **options)


def _row(summary, name):
    (row,) = [layer for layer in summary.layers if layer.name == name]
    return row


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_multiply_adds_and_parameters_match_torchvision(name):
    model = _torchvision(name)
    summary = summarize(model, (3, 224, 224))
    assert summary.multiply_adds / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.02)
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert summary.trainable_params == summary.total_params and summary.frozen_params == 0


def test_googlenet_auxiliary_classifiers_count_parameters_but_not_multiply_adds_in_eval():
    model = _torchvision("googlenet")
    summary = summarize(model, (3, 224, 224))
    auxiliary = [layer for layer in summary.layers if layer.name.startswith("aux")]
    assert auxiliary and all(layer.output_shape is None and layer.multiply_adds == 0 for layer in auxiliary)
    expected = sum(p.numel() for head in (model.aux1, model.aux2) for p in head.parameters())
    assert sum(layer.trainable_params for layer in auxiliary) == expected > 0


def test_receptive_fields_of_classic_networks():
    # AlexNet conv1 11 s4 → 11/4, pool 3 s2 → 19/8, conv 5 → 51, pool → 67/16, three conv 3 → 163, pool → 195/32
    alexnet = summarize(_torchvision("alexnet"), (3, 224, 224))
    assert (_row(alexnet, "features.12").receptive_field, _row(alexnet, "features.12").jump) == ((195, 195), (32, 32))
    # ResNet-50: conv 7 s2 → 7/2, pool → 11/4; each bottleneck's 3×3 adds 2·j: layer1 3×8 → 35,
    # layer2 8 + 3×16 → 91/8, layer3 16 + 5×32 → 267/16, layer4 32 + 2×64 → 427/32
    resnet = summarize(_torchvision("resnet50"), (3, 224, 224))
    last = [layer for layer in resnet.layers if layer.name.startswith("layer4.2.")][-1]
    assert (last.receptive_field, last.jump) == ((427, 427), (32, 32))
    assert _row(resnet, "layer4.0.downsample.0").receptive_field == (267, 267)  # the 1×1 shortcut sees less
    googlenet = summarize(_torchvision("googlenet"), (3, 224, 224))
    for block in ("inception3b", "inception4e", "inception5b"):  # all branches read the same concatenation
        fields = {_row(googlenet, f"{block}.{branch}.conv").receptive_field for branch in ("branch1", "branch2.0", "branch3.0")}
        assert len(fields) == 1


def _measured_field(model: nn.Module, input_size: int, output_index: tuple[int, int], output=lambda y: y) -> tuple[int, int, int, int]:
    """(first row, extent in rows, first column, extent in columns) of the input pixels one output depends on."""
    x = torch.zeros(1, 1, input_size, input_size, requires_grad=True)
    output(model(x))[(0, 0, *output_index)].backward()
    rows, columns = x.grad[0, 0].nonzero(as_tuple=True)
    return rows.min().item(), (rows.max() - rows.min() + 1).item(), columns.min().item(), (columns.max() - columns.min() + 1).item()


@st.composite
def stacks(draw):
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        kernel, stride = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        if draw(st.booleans()):
            layers.append(nn.Conv2d(1, 1, (kernel, draw(st.integers(1, 4))), stride, dilation=draw(st.integers(1, 2)), bias=False))
        else:
            layers.append(nn.AvgPool2d(kernel, stride))
    return nn.Sequential(*layers)


@settings(max_examples=30, deadline=None)
@given(model=stacks())
def test_receptive_field_and_jump_equal_the_support_of_the_gradient(model):
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            nn.init.constant_(layer.weight, 1.0)  # positive weights: every tap of every window reaches the input
    try:
        with torch.no_grad():
            output = model(torch.zeros(1, 1, 48, 48))
    except RuntimeError:  # a random stack may shrink the input below a kernel
        assume(False)
    assume(min(output.shape[2:]) >= 2)
    last = summarize(model, (1, 48, 48)).layers[-1]
    _, height, _, width = _measured_field(model, 48, (0, 0))
    assert last.receptive_field == (height, width)
    first_row, _, first_column, _ = _measured_field(model, 48, (1, 1))
    assert last.jump == (first_row, first_column)


class Branches(nn.Module):
    """stem → (3×3 branch, 7×7 branch) summed or concatenated → head; a later 1×1 reads the same concatenation."""

    def __init__(self, combine: str) -> None:
        super().__init__()
        self.combine = combine
        self.stem = nn.Conv2d(1, 1, 3, stride=2, padding=1)
        self.small = nn.Conv2d(1, 1, 3, padding=1)
        self.large = nn.Conv2d(1, 1, 7, padding=3)
        self.head = nn.Conv2d(2 if combine == "cat" else 1, 1, 3, padding=1)
        self.grow = nn.Conv2d(1, 1, 9, padding=4)
        self.reader = nn.Conv2d(2 if combine == "cat" else 1, 1, 1)

    def forward(self, x):
        x = self.stem(x)
        a, b = self.small(x), self.large(x)
        joined = a + b if self.combine == "sum" else torch.cat([a, b], dim=1)  # no module: the largest field
        grown = self.grow(self.head(joined))  # a larger field, seen before the reader runs
        return grown, self.reader(joined)


@pytest.mark.parametrize("combine", ["sum", "cat"])
def test_sums_and_concatenations_take_the_largest_field_of_their_branches(combine):
    model = Branches(combine)
    for parameter in model.parameters():
        nn.init.constant_(parameter, 0.1)
    summary = summarize(model, (1, 64, 64))
    _, reader, _, _ = _measured_field(model, 64, (16, 16), output=lambda outputs: outputs[1])
    assert _row(summary, "reader").receptive_field == (reader, reader) == (15, 15)  # stem 3/2, large 3 + 6·2
    assert _row(summary, "head").receptive_field == (19, 19)
    _, grown, _, _ = _measured_field(model, 64, (16, 16), output=lambda outputs: outputs[0])
    assert _row(summary, "grow").receptive_field == (grown, grown)


@pytest.mark.parametrize(
    "layer, input_size",
    [
        (nn.Conv2d(6, 12, (3, 5), stride=(2, 1), padding=1, dilation=(1, 2), groups=3), (6, 20, 24)),
        (nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (4, 7, 9)),
        (nn.Conv1d(3, 5, 4, stride=2), (3, 30)),
        (nn.Conv3d(2, 4, 3), (2, 6, 7, 8)),
        (nn.Linear(10, 7), (5, 10)),
    ],
)
def test_multiply_adds_equal_half_of_pytorchs_flop_count(layer, input_size):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        layer(torch.zeros(1, *input_size))
    assert summarize(layer, input_size).multiply_adds == counter.get_total_flops() // 2 > 0


def test_lenet_rows_by_the_formulas():
    summary = summarize(build_network(LENET_DESCRIPTION), (1, 32, 32))
    conv = _row(summary, "conv2.conv")
    assert conv.output_shape == (16, 10, 10)
    assert conv.multiply_adds == 10 * 10 * 5 * 5 * 6 * 16  # H_out·W_out·K_h·K_w·C_in·C_out
    assert conv.trainable_params == 5 * 5 * 6 * 16 + 16
    assert (conv.receptive_field, conv.jump) == ((14, 14), (2, 2))  # 5 → pool 6/2 → 6 + 4·2
    assert _row(summary, "fc1.linear").multiply_adds == 400 * 120
    assert _row(summary, "fc1.linear").receptive_field is None  # a flattened vector has no spatial field
    assert summary.multiply_adds == 117_600 + 240_000 + 48_000 + 10_080 + 840
    assert summary.total_params == 61_706


def test_shared_frozen_and_directly_held_parameters_are_counted_once():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(8))  # held by a module that also has children
            self.first = nn.Linear(8, 8)
            self.second = nn.Linear(8, 8)
            self.second.weight = self.first.weight  # tied weights
            self.frozen = nn.Linear(8, 3)
            self.frozen.requires_grad_(False)

        def forward(self, x):
            return self.frozen(self.first(self.second(self.first(x)) * self.scale))

    model = Scaled()
    summary = summarize(model, (8,))
    assert summary.total_params == sum(p.numel() for p in model.parameters()) == 8 + 64 + 8 + 8 + 27
    assert summary.frozen_params == 27 and summary.trainable_params == 88
    assert [layer.name for layer in summary.layers] == ["first", "second", "first", "frozen", "Scaled"]
    assert summary.multiply_adds == 3 * 64 + 24  # first runs twice


def test_restores_training_flags_and_leaves_buffers_and_gradients_alone():
    model = _torchvision("resnet18", device="cpu")
    model.train()
    model.layer2.eval()
    running_mean = model.bn1.running_mean.clone()
    cpu = summarize(model, (3, 64, 64))
    assert model.training and model.layer1.training and not model.layer2.training and not model.layer2[0].bn1.training
    torch.testing.assert_close(model.bn1.running_mean, running_mean)
    assert all(p.grad is None for p in model.parameters())
    assert cpu == summarize(_torchvision("resnet18"), (3, 64, 64))  # real tensors and meta tensors agree


def test_model_dtype_is_used_and_models_without_parameters_work():
    assert summarize(nn.Conv2d(2, 3, 3).double(), (2, 8, 8)).layers[0].output_shape == (3, 6, 6)
    summary = summarize(nn.Sequential(nn.MaxPool2d(2), nn.Flatten()), (1, 4, 4))
    assert [layer.output_shape for layer in summary.layers] == [(1, 2, 2), (4,)]


def test_failures_name_the_layer_and_the_input():
    with pytest.raises(ValueError, match=r"AlexNet: the forward pass failed in layer 'features.\d+' .*on input 3x32x32"):
        summarize(_torchvision("alexnet"), (3, 32, 32))
    with pytest.raises(ValueError, match="positive integers"):
        summarize(nn.Conv2d(1, 1, 1), (1, 0, 4))


def test_table_and_dict_renderings():
    summary = summarize(build_network(LENET_DESCRIPTION), (1, 32, 32))
    table = summary.table()
    assert "conv1.conv" in table and "6x28x28" in table and "117,600" in table
    assert "Parameters: 61,706 (61,706 trainable, 0 frozen)" in table
    assert str(summary) == table
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["total_params"] == 61_706 and data["input_size"] == [1, 32, 32]
    assert data["layers"][0] == {
        "name": "conv1.conv",
        "type": "Conv2d",
        "output_shape": [6, 28, 28],
        "trainable_params": 156,
        "frozen_params": 0,
        "multiply_adds": 117_600,
        "receptive_field": [5, 5],
        "jump": [1, 1],
    }
    assert sum(layer["multiply_adds"] for layer in data["layers"]) == data["multiply_adds"] == math.prod((28, 28, 25, 6)) + 240_000 + 58_920


@pytest.mark.parametrize("name, expected", [("alexnet", 8), ("vgg16", 16), ("googlenet", 22), ("resnet18", 18),
                                            ("resnet50", 50), ("resnet20", 20)])
def test_depth_counts_weighted_layers_on_the_longest_path_as_the_papers_do(name, expected):
    from cnnkit.models import create_model

    assert depth(create_model(name).eval()) == expected


def test_depth_of_a_description_is_its_conv_and_fc_stages():
    assert depth(build_network(LENET_DESCRIPTION)) == 5
