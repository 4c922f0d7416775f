"""LeNet family: the lecture's sample network and LeNet-5 (LeCun et al. 1998).

Both are small enough to train on MNIST or CIFAR-10 on a laptop CPU, take grayscale
(``in_channels=1``) or colour (``in_channels=3``) input, and use tanh (as in 1998) or ReLU.
Unlike the ImageNet networks they have no global pooling, so the first fully connected layer
is sized for ``input_size``, computed with the lecture's output-size formula.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.models.registry import register_model
from cnnkit.nn.layers import activation_layer
from cnnkit.ops.shapes import output_size


def _activation(name: str) -> nn.Module:
    """The activation module ``name`` ("tanh", "relu" or another of :data:`cnnkit.nn.layers.ACTIVATIONS`)."""
    layer = activation_layer(name)
    if layer is None:
        raise ValueError("a LeNet needs an activation between its layers, got 'none'")
    return layer


class SampleNet(nn.Module):
    """The lecture's sample network, a LeNet-like stack in the compact notation (K, n_K, s, p):

        conv 5×5, 6 kernels, s=1, p=2 → act → max pool 2×2, s=2
        conv 5×5, 16 kernels, s=1, p=0 → act → max pool 2×2, s=2
        fc 120 → act → fc 84 → act → fc num_classes

    On 28×28 MNIST digits: (N, 1, 28, 28) → conv1 (N, 6, 28, 28) → pool1 (N, 6, 14, 14) →
    conv2 (N, 16, 10, 10) → pool2 (N, 16, 5, 5) → 400 features → (N, num_classes).
    On 32×32 CIFAR images (``in_channels=3, input_size=32``) pool2 is (N, 16, 6, 6).
    """

    default_input_size = (1, 28, 28)
    classifier_name = "fc3"
    stage_names = ("pool1", "pool2")

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, activation: str = "relu", input_size: int = 28
    ) -> None:
        super().__init__()
        self.default_input_size = (in_channels, input_size, input_size)
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), _activation(activation))
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, kernel_size=5), _activation(activation))
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        side = input_size
        for kernel, stride, padding in [(5, 1, 2), (2, 2, 0), (5, 1, 0), (2, 2, 0)]:
            side = output_size(side, kernel, stride, padding)
        self.fc1 = nn.Sequential(nn.Linear(16 * side * side, 120), _activation(activation))
        self.fc2 = nn.Sequential(nn.Linear(120, 84), _activation(activation))
        self.fc3 = nn.Linear(84, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.pool1(self.conv1(x))  # (N, 6, H/2, W/2)
        return self.pool2(self.conv2(x))  # (N, 16, (H/2-4)/2, (W/2-4)/2)

    def forward_head(self, features: Tensor) -> Tensor:
        x = torch.flatten(features, 1)  # (N, 16·h·w)
        return self.fc3(self.fc2(self.fc1(x)))  # (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to
    document recognition", §II.B, Fig. 2), with the paper's layer names:

        C1: conv 5×5, 6 maps → act          (N, 6, 28, 28)   from a 32×32 input
        S2: 2×2 average pooling, stride 2    (N, 6, 14, 14)
        C3: conv 5×5, 16 maps → act          (N, 16, 10, 10)
        S4: 2×2 average pooling, stride 2    (N, 16, 5, 5)
        C5: conv 5×5, 120 maps → act         (N, 120, 1, 1)
        F6: fully connected, 84 units → act
        output: fully connected, num_classes

    Simplifications, as usual today: S2/S4 are plain averages (the paper adds a trainable
    coefficient and bias per map), C3 sees all six S2 maps (the paper's Table I connects each
    to a subset), the output layer is linear (the paper uses Euclidean RBF units), and tanh is
    plain tanh (the paper scales it, 1.7159·tanh(2a/3)). The paper pads 28×28 MNIST digits to
    32×32; other sizes ≥ 32 work, C5's maps then being larger than 1×1.
    """

    default_input_size = (1, 32, 32)
    classifier_name = "output"
    stage_names = ("s2", "s4", "c5")

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, activation: str = "tanh", input_size: int = 32
    ) -> None:
        super().__init__()
        self.default_input_size = (in_channels, input_size, input_size)
        self.c1 = nn.Sequential(nn.Conv2d(in_channels, 6, kernel_size=5), _activation(activation))
        self.s2 = nn.AvgPool2d(kernel_size=2, stride=2)
        self.c3 = nn.Sequential(nn.Conv2d(6, 16, kernel_size=5), _activation(activation))
        self.s4 = nn.AvgPool2d(kernel_size=2, stride=2)
        self.c5 = nn.Sequential(nn.Conv2d(16, 120, kernel_size=5), _activation(activation))
        side = input_size
        for kernel, stride in [(5, 1), (2, 2), (5, 1), (2, 2), (5, 1)]:
            side = output_size(side, kernel, stride)
        self.f6 = nn.Sequential(nn.Linear(120 * side * side, 84), _activation(activation))
        self.output = nn.Linear(84, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.s2(self.c1(x))  # (N, 6, 14, 14)
        x = self.s4(self.c3(x))  # (N, 16, 5, 5)
        return self.c5(x)  # (N, 120, 1, 1)

    def forward_head(self, features: Tensor) -> Tensor:
        x = torch.flatten(features, 1)  # (N, 120)
        return self.output(self.f6(x))  # (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def sample_net(num_classes: int = 10, in_channels: int = 1, **kwargs) -> SampleNet:
    """The lecture's LeNet-like sample network; ``activation`` "relu" or "tanh", ``input_size`` 28 or 32."""
    return SampleNet(num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def lenet5(num_classes: int = 10, in_channels: int = 1, **kwargs) -> LeNet5:
    """LeNet-5 on 32×32 input; ``activation`` "tanh" (the paper's) or "relu"."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, **kwargs)
