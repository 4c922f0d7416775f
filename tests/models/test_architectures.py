"""Every registered architecture, its blocks, the registry and extract_features."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.models import (
    GoogLeNetOutputs,
    create_model,
    extract_features,
    googlenet_loss,
    list_models,
    register_model,
)
from cnnkit.nn.blocks import BasicBlock, Bottleneck, CifarBasicBlock, Inception, ZeroPadShortcut

FAMILIES = {
    "sample_net": ["sample_net"],
    "lenet5": ["lenet5"],
    "alexnet": ["alexnet"],
    "vgg": [f"vgg{depth}{bn}" for depth in (11, 13, 16, 19) for bn in ("", "_bn")],
    "googlenet": ["googlenet"],
    "resnet_basic": ["resnet18", "resnet34"],
    "resnet_bottleneck": ["resnet50", "resnet101", "resnet152"],
    "cifar_resnet": ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"],
}

# family → (small input side, stage output shapes (C, H, W) at that side)
SMALL_CASES = {
    "sample_net": (28, [(6, 14, 14), (16, 5, 5)]),
    "lenet5": (32, [(6, 14, 14), (16, 5, 5), (120, 1, 1)]),
    "alexnet": (64, [(64, 15, 15), (192, 7, 7), (384, 3, 3), (256, 3, 3), (256, 3, 3)]),
    "vgg": (32, [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]),
    "googlenet": (32, [(192, 8, 8), (480, 4, 4), (832, 2, 2), (1024, 1, 1)]),
    "resnet_basic": (32, [(64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1)]),
    "resnet_bottleneck": (32, [(256, 8, 8), (512, 4, 4), (1024, 2, 2), (2048, 1, 1)]),
    "cifar_resnet": (32, [(16, 32, 32), (32, 16, 16), (64, 8, 8)]),
}
FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}
# Deeper variants built from the same code as a tested shallower one: their backward pass is
# skipped to keep the suite fast; test_torchvision_compat checks their every name and shape.
FORWARD_ONLY = {"vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet101", "resnet152"}


def test_registry_lists_every_architecture_sorted():
    assert list_models() == sorted(FAMILY_OF)


def test_unknown_model_names_close_matches():
    with pytest.raises(ValueError, match="resnet50") as error:
        create_model("resnet05")
    assert "unknown model 'resnet05'" in str(error.value)


def test_registering_a_taken_name_is_refused():
    def resnet18():  # same name as the registered builder
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(resnet18)


@pytest.mark.parametrize("name", sorted(FAMILY_OF))
def test_model_contract(name):
    """Shape, finiteness, gradients to every parameter, num_classes/in_channels, stages, head split.

    The small inputs make the deepest feature maps 1×1 or 2×2; batch norm in training mode
    still sees two values per channel from the batch of two.
    """
    side, stage_shapes = SMALL_CASES[FAMILY_OF[name]]
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=2)
    assert model.default_input_size[0] == 2
    classifier = model.get_submodule(model.classifier_name)
    assert isinstance(classifier, nn.Linear) and classifier.out_features == 7

    x = torch.randn(2, 2, side, side)
    targets = torch.tensor([1, 6])
    if name not in FORWARD_ONLY:
        model.train()
        outputs = model(x)
        logits = outputs.logits if isinstance(outputs, GoogLeNetOutputs) else outputs
        assert logits.shape == (2, 7)
        assert torch.isfinite(logits).all()
        googlenet_loss(outputs, targets).backward()  # plain cross-entropy for a logits tensor
        without_gradient = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert without_gradient == []

    model.eval()
    with torch.no_grad():
        stages = extract_features(model, x, model.stage_names)
        assert list(stages) == list(model.stage_names)
        assert [tuple(feature.shape) for feature in stages.values()] == [(2, *shape) for shape in stage_shapes]
        logits = model(x)
        assert logits.shape == (2, 7)
        assert torch.isfinite(logits).all()
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), logits)


def test_default_input_sizes():
    assert create_model("resnet18").default_input_size == (3, 224, 224)
    assert create_model("resnet20").default_input_size == (3, 32, 32)
    assert create_model("lenet5").default_input_size == (1, 32, 32)
    assert create_model("sample_net", in_channels=3, input_size=32).default_input_size == (3, 32, 32)


@pytest.mark.parametrize(
    ("name", "parameters"),
    # He et al. 2016 Table 6: 0.27 M, 0.46 M, 0.66 M, 0.85 M, 1.7 M
    [("resnet20", 269_722), ("resnet32", 464_154), ("resnet44", 658_586), ("resnet56", 853_018), ("resnet110", 1_727_962)],
)
def test_cifar_resnet_parameter_counts(name, parameters):
    assert sum(p.numel() for p in create_model(name).parameters()) == parameters


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    x = torch.randn(2, 16, 8, 8)
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    out = shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert list(shortcut.parameters()) == []
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert (out[:, :8] == 0).all() and (out[:, 24:] == 0).all()


def test_cifar_block_uses_option_a_only_where_the_shape_changes():
    assert isinstance(CifarBasicBlock(16, 16).shortcut, nn.Identity)
    block = CifarBasicBlock(16, 32, stride=2)
    assert isinstance(block.shortcut, ZeroPadShortcut)
    assert block(torch.randn(1, 16, 32, 32)).shape == (1, 32, 16, 16)


def test_residual_blocks_project_only_where_the_shape_changes():
    assert BasicBlock(64, 64).downsample is None
    assert BasicBlock(64, 128, stride=2)(torch.randn(1, 64, 16, 16)).shape == (1, 128, 8, 8)
    bottleneck = Bottleneck(256, 128, stride=2)
    assert bottleneck.conv2.stride == (2, 2) and bottleneck.downsample is not None
    assert bottleneck(torch.randn(1, 256, 16, 16)).shape == (1, 512, 8, 8)
    assert Bottleneck(256, 64).downsample is None


def test_inception_module_concatenates_its_four_branches():
    module = Inception(192, 64, 96, 128, 16, 32, 32)  # inception (3a), Table 1
    assert module.branch3[1].conv.kernel_size == (5, 5)  # the paper's 5×5 by default
    assert module(torch.randn(1, 192, 28, 28)).shape == (1, 256, 28, 28)
    with pytest.raises(ValueError, match="odd"):
        Inception(192, 64, 96, 128, 16, 32, 32, wide_kernel_size=4)


def test_googlenet_auxiliary_classifiers_in_training_only():
    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=5)
    x, targets = torch.randn(2, 3, 64, 64), torch.tensor([0, 4])
    outputs = model.train()(x)
    assert isinstance(outputs, GoogLeNetOutputs)
    assert [tuple(o.shape) for o in outputs] == [(2, 5)] * 3
    expected = F.cross_entropy(outputs.logits, targets) + 0.3 * (
        F.cross_entropy(outputs.aux1, targets) + F.cross_entropy(outputs.aux2, targets)
    )
    torch.testing.assert_close(googlenet_loss(outputs, targets), expected)

    logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5)
    with pytest.raises(ValueError, match="aux1 did not run"):
        extract_features(model, x, ["aux1"])

    without_aux = create_model("googlenet", num_classes=5, aux_logits=False).train()
    assert without_aux.aux1 is None and isinstance(without_aux(x), torch.Tensor)


def test_googlenet_transform_input_needs_rgb():
    with pytest.raises(ValueError, match="in_channels=3"):
        create_model("googlenet", in_channels=1, transform_input=True)


def test_lenet_activation_and_input_size():
    assert any(isinstance(m, nn.Tanh) for m in create_model("lenet5").modules())
    relu_net = create_model("lenet5", activation="relu")
    assert any(isinstance(m, nn.ReLU) for m in relu_net.modules())
    assert not any(isinstance(m, nn.Tanh) for m in relu_net.modules())
    colour = create_model("sample_net", in_channels=3, input_size=32)
    assert colour(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="activation"):
        create_model("lenet5", activation="sigmoidal")
    with pytest.raises(ValueError, match="larger than"):
        create_model("lenet5", input_size=28)  # the paper pads MNIST to 32×32


def test_vgg19_paper_layer_names():
    names = create_model("vgg19").layer_names
    # the layers of Gatys et al.'s style transfer
    assert [names[n] for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")] == [
        "features.1",
        "features.6",
        "features.11",
        "features.20",
        "features.29",
    ]
    assert names["conv4_2"] == "features.21" and names["pool5"] == "features.36"


def test_create_model_is_channels_last_by_default_with_the_same_output():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10).eval()
    assert model.architecture == "resnet18"
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    plain = create_model("resnet18", num_classes=10, memory_format=torch.contiguous_format).eval()
    assert plain.conv1.weight.is_contiguous() and not plain.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), atol=1e-4, rtol=1e-4)


# extract_features -------------------------------------------------------------------------------


def _hook_count(model: nn.Module) -> int:
    return sum(len(module._forward_hooks) for module in model.modules())


def test_extract_features_stops_after_the_last_requested_layer():
    model = create_model("resnet20").eval()
    calls = []
    model.layer3.register_forward_hook(lambda *_: calls.append("layer3"))
    model.linear.register_forward_hook(lambda *_: calls.append("linear"))
    features = extract_features(model, torch.randn(1, 3, 32, 32), ["layer2", "layer1"])
    assert list(features) == ["layer2", "layer1"]  # in the order asked
    assert calls == []
    assert _hook_count(model) == 2  # only the test's own hooks remain


def test_extract_features_equals_the_forward_pass():
    model = create_model("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = extract_features(model, x, ["layer3", "linear"])
        torch.testing.assert_close(features["layer3"], model.forward_features(x))
        torch.testing.assert_close(features["linear"], model(x))
        assert extract_features(model, x, "layer1")["layer1"].shape == (2, 16, 32, 32)


def test_extract_features_copies_outputs_that_an_inplace_relu_later_changes():
    model = create_model("alexnet").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = extract_features(model, x, ["features.0", "features.1"])
        expected = model.features[0](x)
    torch.testing.assert_close(features["features.0"], expected)
    assert (features["features.0"] < 0).any()
    torch.testing.assert_close(features["features.1"], expected.clamp(min=0))


def test_extract_features_unknown_name_lists_available_and_leaves_no_hooks():
    model = create_model("resnet20")
    with pytest.raises(ValueError, match=r"no submodule 'layer4'.*available: conv1, bn1") as error:
        extract_features(model, torch.randn(1, 3, 32, 32), ["layer1", "layer4"])
    assert "did you mean layer3, layer2, layer1" in str(error.value)
    assert _hook_count(model) == 0


def test_extract_features_removes_hooks_when_the_forward_pass_fails():
    model = create_model("resnet20")
    with pytest.raises(RuntimeError):
        extract_features(model, torch.randn(1, 5, 32, 32), ["layer1"])  # wrong channel count
    assert _hook_count(model) == 0


def test_create_model_loads_weights_from_a_file(tmp_path):
    torch.manual_seed(0)
    source = create_model("resnet20")
    path = tmp_path / "resnet20.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    loaded = create_model("resnet20", weights=path)
    torch.testing.assert_close(loaded.state_dict(), source.state_dict())
