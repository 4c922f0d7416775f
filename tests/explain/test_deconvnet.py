"""Zeiler & Fergus's deconvnet: each of its three rules, the paper's chain against the autograd
version, and exactly where it parts from plain gradient backpropagation."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit import ops
from cnnkit.explain import deconvnet, project_chain, strongest_activations, transposed_filtering
from cnnkit.explain.deconvnet import top_signal
from cnnkit.ops import max_unpool


def test_unpooling_puts_the_value_back_at_the_recorded_switch():
    x = torch.tensor([[[[1.0, 5.0, 2.0, 0.0],
                        [3.0, 4.0, 8.0, 1.0],
                        [0.0, 2.0, 1.0, 1.0],
                        [9.0, 1.0, 0.0, 7.0]]]])
    projection = project_chain([nn.MaxPool2d(2)], x)  # the strongest: 9 from the lower-left window
    expected = torch.zeros(1, 4, 4)
    expected[0, 3, 0] = 9.0
    assert projection.position == (1, 0) and projection.activation == 9.0
    assert torch.equal(projection.image, expected)
    projection = project_chain([nn.MaxPool2d(2)], x, channel=0, position=(0, 1))  # window of 2, 0, 8, 1
    assert projection.image[0, 1, 2] == 8.0 and projection.image.count_nonzero() == 1
    pooled, switches = ops.max_pool(x, 2, return_switches=True)
    unpooled = torch.zeros_like(x)
    unpooled[0, 0, 0, 1], unpooled[0, 0, 1, 2], unpooled[0, 0, 3, 0], unpooled[0, 0, 3, 3] = 5.0, 8.0, 9.0, 7.0
    assert torch.equal(max_unpool(pooled, switches, x.shape), unpooled)


def test_overlapping_windows_that_share_a_maximum_add_their_values_there():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0  # the maximum of all four 3×3 windows with stride 2
    pooled, switches = ops.max_pool(x, 3, stride=2, return_switches=True)
    assert (switches == 12).all()
    signal = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert max_unpool(signal, switches, x.shape)[0, 0, 2, 2] == 10.0
    x.requires_grad_(True)
    (gradient,) = torch.autograd.grad((F.max_pool2d(x, 3, 2) * signal).sum(), x)
    assert torch.equal(gradient, max_unpool(signal, switches, x.shape))


def _relu_then_scale(weight: float, bias: float) -> list[nn.Module]:
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(weight)
        conv.bias.fill_(bias)
    return [nn.ReLU(), conv]


@pytest.mark.parametrize(
    ("weight", "x_value", "deconvnet_value", "gradient_value"),
    [
        (2.0, 1.5, 2.0, 2.0),      # positive signal, active unit: both pass it
        (2.0, -1.5, 2.0, 0.0),     # positive signal, inactive unit: only the deconvnet passes it
        (-2.0, 1.5, 0.0, -2.0),    # negative signal, active unit: only the gradient passes it
        (-2.0, -1.5, 0.0, 0.0),    # negative signal, inactive unit: neither
    ],
)
def test_rectification_passes_only_positive_signals_whatever_the_forward_sign(weight, x_value, deconvnet_value, gradient_value):
    """relu → 1×1 conv (w, b = 10): the signal reaching the ReLU is w × activation."""
    layers = _relu_then_scale(weight, 10.0)
    x = torch.full((1, 1, 1, 1), x_value)
    projection = project_chain(layers, x)
    activation = projection.activation  # 10 + w·relu(x) > 0
    assert torch.allclose(projection.image, torch.full((1, 1, 1), deconvnet_value * activation))
    x = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(nn.Sequential(*layers)(x).sum() * activation, x)
    assert torch.allclose(gradient[0], torch.full((1, 1, 1), gradient_value * activation))


def test_filtering_uses_the_transposed_kernels():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=True)
    signal = torch.randn(1, 3, 6, 5)
    filtered = transposed_filtering(signal, conv)
    # The lecture's convolution (kernel flipped) with input and output channels swapped, full size, cropped by p.
    full = ops.convolution(signal, conv.weight.detach().transpose(0, 1), padding="full")
    assert torch.allclose(filtered, full[..., 1:-1, 1:-1], atol=1e-5)
    # The adjoint: <conv(x), y> = <x, conv^T(y)> without the bias.
    x = torch.randn(1, 2, 6, 5)
    assert torch.isclose((F.conv2d(x, conv.weight, None, 1, 1) * signal).sum(), (x * filtered).sum(), atol=1e-4)
    strided = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    y = torch.randn(1, 3, 4, 3)
    x = torch.randn(1, 2, 8, 6)
    assert torch.isclose((strided(x) - strided.bias.view(1, -1, 1, 1)).mul(y).sum(), (x * transposed_filtering(y, strided, (8, 6))).sum(), atol=1e-4)


class SmallNet(nn.Module):
    """conv-relu-pool, conv-relu-pool, conv-relu: a chain as in Zeiler & Fergus's network."""

    def __init__(self, positive: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(8, 5, 3, padding=1), nn.ReLU(inplace=True),
        )
        if positive:
            with torch.no_grad():
                for module in self.features:
                    if isinstance(module, nn.Conv2d):
                        module.weight.abs_()
                        module.bias.abs_()

    def forward(self, x):
        return self.features(x).mean((2, 3))


@pytest.mark.parametrize("index", [1, 2, 4, 7])
def test_the_papers_chain_equals_autograd_with_the_relu_rule_replaced(index):
    torch.manual_seed(1)
    model = SmallNet().eval()
    x = torch.randn(1, 3, 16, 16)
    chain = project_chain(model.features[: index + 1], x)
    general = deconvnet(model, x, f"features.{index}", chain.channel, chain.position)
    assert general.activation == pytest.approx(chain.activation, rel=1e-6)
    assert torch.allclose(chain.image, general.image, atol=1e-6)
    assert all(m.inplace for m in model.features if isinstance(m, nn.ReLU))  # flags restored


def _gradient(model, x, layer, channel, position, value):
    x = x.clone().requires_grad_(True)
    output = model.features[: layer + 1](x)
    (grad,) = torch.autograd.grad(output[0, channel, position[0], position[1]] * value, x)
    return grad[0]


def test_equal_to_the_gradient_when_no_relu_sees_a_negative_signal_or_a_dead_unit():
    torch.manual_seed(2)
    model = SmallNet(positive=True).eval()
    x = torch.rand(1, 3, 16, 16)  # positive weights and inputs: every unit active, every signal ≥ 0
    projection = deconvnet(model, x, "features.7")
    gradient = _gradient(model, x, 7, projection.channel, projection.position, projection.activation)
    assert torch.allclose(projection.image, gradient, atol=1e-6)


def test_different_from_the_gradient_where_the_relu_rules_differ():
    torch.manual_seed(3)
    model = SmallNet().eval()
    x = torch.randn(1, 3, 16, 16)
    projection = deconvnet(model, x, "features.7")
    gradient = _gradient(model, x, 7, projection.channel, projection.position, projection.activation)
    assert not torch.allclose(projection.image, gradient, atol=1e-4)
    # Both keep the same switches and filters: with only the first layer's ReLU between, the two
    # differ exactly at the first ReLU's units with a negative signal or a non-positive input.
    layers = model.features[:4]  # conv, relu, pool, conv
    chain = project_chain(layers, x)
    grad = _gradient(model, x, 3, chain.channel, chain.position, chain.activation)
    pre = model.features[:1](x)  # input of the ReLU
    pooled, switches = ops.max_pool(F.relu(pre), 2, return_switches=True)
    signal, _, _ = top_signal(model.features[:4](x), chain.channel, chain.position)
    at_relu = ops.max_unpool(transposed_filtering(signal, model.features[3]), switches, pre.shape)  # stride 1: sizes agree
    expected_deconv = transposed_filtering(at_relu.clamp(min=0), model.features[0])[0]
    expected_grad = transposed_filtering(at_relu * (pre > 0), model.features[0])[0]
    assert torch.allclose(chain.image, expected_deconv, atol=1e-5)
    assert torch.allclose(grad, expected_grad, atol=1e-5)
    assert ((at_relu < 0) & (pre > 0)).any() or ((at_relu > 0) & (pre <= 0)).any()


def test_residual_network_and_strongest_activations():
    from cnnkit.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    x = torch.randn(1, 3, 32, 32)
    strongest = strongest_activations(model, x, "layer2", 3)
    assert len(strongest) == 3 and strongest[0][2] >= strongest[1][2] >= strongest[2][2]
    channel, position, value = strongest[0]
    projection = deconvnet(model, x, "layer2", channel, position)
    assert projection.image.shape == (3, 32, 32) and projection.activation == pytest.approx(value, rel=1e-5)
    assert projection.image.abs().sum() > 0


def test_refusals():
    from cnnkit.models import create_model

    with pytest.raises(ValueError, match="no nn.ReLU"):
        deconvnet(create_model("lenet5"), torch.randn(1, 1, 32, 32), "output")
    with pytest.raises(ValueError, match="has no layer"):
        deconvnet(SmallNet(), torch.randn(1, 3, 16, 16), "features.99")
    with pytest.raises(ValueError, match="out of range"):
        project_chain([nn.MaxPool2d(2)], torch.randn(1, 2, 4, 4), channel=5)
    with pytest.raises(ValueError, match="handles Conv2d"):
        project_chain([nn.BatchNorm2d(3)], torch.randn(1, 3, 4, 4))
