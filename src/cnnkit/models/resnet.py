"""Residual networks (He, Zhang, Ren & Sun 2016, "Deep residual learning for image recognition").

Two layouts from the paper:

- ImageNet (§3.4, Table 1): a 7×7 stem, four stages of residual blocks at 64, 128, 256 and
  512 channels (×4 with bottlenecks), global average pooling, one fully connected layer.
  ResNet-18/34 stack :class:`~cnnkit.nn.blocks.BasicBlock`, ResNet-50/101/152
  :class:`~cnnkit.nn.blocks.Bottleneck`. Names equal torchvision's, so its weights load.
- CIFAR-10 (§4.2): a 3×3 stem and three stages of n basic blocks at 16, 32 and 64 channels
  on 32×32 images, depth 6n + 2 (ResNet-20/32/44/56/110 for n = 3/5/7/9/18), with the
  parameter-free "option A" shortcut. Names equal those of the widely used
  akamaster/pytorch_resnet_cifar10 weights (after stripping DataParallel's ``module.``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.models.registry import register_model
from cnnkit.nn.blocks import BasicBlock, Bottleneck, CifarBasicBlock


def make_stage(
    block: type[BasicBlock | Bottleneck | CifarBasicBlock], in_channels: int, channels: int, depth: int, stride: int
) -> nn.Sequential:
    """``depth`` residual blocks; the first changes the stride and width, the others keep them."""
    out_channels = channels * block.expansion
    blocks = [block(in_channels, channels, stride)]
    blocks += [block(out_channels, channels, 1) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


class ResNet(nn.Module):
    """ResNet, ImageNet layout (Table 1). Shapes from a 224×224 image, c = block.expansion:

        conv1 7×7, 64, s=2 → bn1 → relu      (N, 64, 112, 112)
        maxpool 3×3, s=2                       (N, 64, 56, 56)
        layer1: depths[0] blocks, 64           (N, 64c, 56, 56)
        layer2: depths[1] blocks, 128, s=2     (N, 128c, 28, 28)
        layer3: depths[2] blocks, 256, s=2     (N, 256c, 14, 14)
        layer4: depths[3] blocks, 512, s=2     (N, 512c, 7, 7)
        global average pool, fc num_classes    (N, num_classes)

    The first block of a stage carries the stride; its shortcut is a projection wherever
    the shape changes (option B).
    """

    default_input_size = (3, 224, 224)
    classifier_name = "fc"
    stage_names = ("layer1", "layer2", "layer3", "layer4")

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        depths: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.default_input_size = (in_channels, 224, 224)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_stage(block, 64, 64, depths[0], stride=1)
        self.layer2 = make_stage(block, 64 * block.expansion, 128, depths[1], stride=2)
        self.layer3 = make_stage(block, 128 * block.expansion, 256, depths[2], stride=2)
        self.layer4 = make_stage(block, 256 * block.expansion, 512, depths[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        x = self.layer1(x)  # (N, 64c, H/4, W/4)
        x = self.layer2(x)  # (N, 128c, H/8, W/8)
        x = self.layer3(x)  # (N, 256c, H/16, W/16)
        return self.layer4(x)  # (N, 512c, H/32, W/32)

    def forward_head(self, features: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(features), 1)  # (N, 512c)
        return self.fc(x)  # (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class CifarResNet(nn.Module):
    """ResNet for CIFAR-10 (§4.2): depth 6n + 2. Shapes from a 32×32 image:

        conv1 3×3, 16 → bn1 → ReLU             (N, 16, 32, 32)
        layer1: n basic blocks, 16               (N, 16, 32, 32)
        layer2: n basic blocks, 32, s=2          (N, 32, 16, 16)
        layer3: n basic blocks, 64, s=2          (N, 64, 8, 8)
        global average pool, linear num_classes  (N, num_classes)

    Shortcuts are identities or, where a stage starts, the parameter-free option A
    (subsample, zero-pad channels). Weights: He initialisation for convolutions and the
    linear layer, as in the reference implementation.
    """

    default_input_size = (3, 32, 32)
    classifier_name = "linear"
    stage_names = ("layer1", "layer2", "layer3")

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.default_input_size = (in_channels, 32, 32)
        n = blocks_per_stage
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_stage(CifarBasicBlock, 16, 16, n, stride=1)
        self.layer2 = make_stage(CifarBasicBlock, 16, 32, n, stride=2)
        self.layer3 = make_stage(CifarBasicBlock, 32, 64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (N, 16, H, W)
        x = self.layer1(x)  # (N, 16, H, W)
        x = self.layer2(x)  # (N, 32, H/2, W/2)
        return self.layer3(x)  # (N, 64, H/4, W/4)

    def forward_head(self, features: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(features), 1)  # (N, 64)
        return self.linear(x)  # (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-18: basic blocks, 2-2-2-2."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


@register_model
def resnet34(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-34: basic blocks, 3-4-6-3."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels)


@register_model
def resnet50(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-50: bottlenecks, 3-4-6-3."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels)


@register_model
def resnet101(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-101: bottlenecks, 3-4-23-3."""
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes, in_channels)


@register_model
def resnet152(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-152: bottlenecks, 3-8-36-3."""
    return ResNet(Bottleneck, (3, 8, 36, 3), num_classes, in_channels)


@register_model
def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-20 (n = 3), 0.27 M parameters."""
    return CifarResNet(3, num_classes, in_channels)


@register_model
def resnet32(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-32 (n = 5), 0.46 M parameters."""
    return CifarResNet(5, num_classes, in_channels)


@register_model
def resnet44(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-44 (n = 7), 0.66 M parameters."""
    return CifarResNet(7, num_classes, in_channels)


@register_model
def resnet56(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-56 (n = 9), 0.85 M parameters."""
    return CifarResNet(9, num_classes, in_channels)


@register_model
def resnet110(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-110 (n = 18), 1.7 M parameters."""
    return CifarResNet(18, num_classes, in_channels)
