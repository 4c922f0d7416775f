"""GoogLeNet, Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions", §5, Table 1).

A stem of ordinary convolutions, nine Inception modules in three groups separated by max
pooling, global average pooling and one linear classifier. Two auxiliary classifiers on
inception4a and inception4d push gradient into the middle of the network during training;
their losses are added with weight 0.3 (§5), and they are dropped at inference.

Module names, batch norm (ε = 0.001) and the 3×3 "5×5" branch follow torchvision's GoogLeNet,
so its ImageNet weights load unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.models.registry import register_model
from cnnkit.nn.blocks import ConvBNReLU, Inception

BATCH_NORM_EPS = 0.001  # torchvision's, from the TensorFlow port its weights came from
AUX_LOSS_WEIGHT = 0.3  # §5: "their loss is added to the total loss with a discount weight 0.3"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet returns in training mode: the main logits and both auxiliary ones, each (N, num_classes)."""

    logits: Tensor
    aux1: Tensor
    aux2: Tensor


def googlenet_loss(outputs: GoogLeNetOutputs | Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy training loss of GoogLeNet (§5): L = CE(logits) + 0.3·(CE(aux1) + CE(aux2)).

    ``outputs`` is what the model returned: :class:`GoogLeNetOutputs` in training mode, or a
    plain (N, num_classes) logits tensor (eval mode, or ``aux_logits=False``), whose loss is
    the plain cross-entropy. ``targets`` are class indices (N,).
    """
    if isinstance(outputs, Tensor):
        return F.cross_entropy(outputs, targets)
    auxiliary = F.cross_entropy(outputs.aux1, targets) + F.cross_entropy(outputs.aux2, targets)
    return F.cross_entropy(outputs.logits, targets) + AUX_LOSS_WEIGHT * auxiliary


class InceptionAux(nn.Module):
    """Auxiliary classifier (§5): average pool to 4×4 (the paper's 5×5 pool, stride 3, on 14×14),
    1×1 conv with 128 kernels → ReLU, fc 1024 → ReLU, dropout 0.7, fc num_classes.
    (N, C, H, W) → (N, num_classes).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, 128, kernel_size=1, eps=BATCH_NORM_EPS)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # (N, 128, 4, 4)
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)  # (N, 1024)
        return self.fc2(self.dropout(x))  # (N, num_classes)


class GoogLeNet(nn.Module):
    """GoogLeNet (Table 1). Shapes from a 224×224 image:

        conv1 7×7, 64, s=2 → max pool 3×3, s=2          (N, 64, 56, 56)
        conv2 1×1, 64 → conv3 3×3, 192                   (N, 192, 56, 56)
        max pool 3×3, s=2                                 (N, 192, 28, 28)
        inception3a, 3b                                   (N, 480, 28, 28)
        max pool 3×3, s=2                                 (N, 480, 14, 14)
        inception4a (→ aux1), 4b, 4c, 4d (→ aux2), 4e     (N, 832, 14, 14)
        max pool 2×2, s=2                                 (N, 832, 7, 7)
        inception5a, 5b                                   (N, 1024, 7, 7)
        global average pool, dropout, fc num_classes      (N, num_classes)

    In training mode with ``aux_logits`` the forward pass returns :class:`GoogLeNetOutputs`
    (train it with :func:`googlenet_loss`); in eval mode, or with ``aux_logits=False``, the
    plain logits tensor. ``transform_input`` turns input normalised with the ImageNet
    mean/std into the (x - 0.5)/0.5 scaling that torchvision's ImageNet weights expect.
    The paper's LRN layers are replaced by batch norm, and its final dropout (0.4) kept.
    ``stage_names`` are at strides 4, 8, 16 and 32.
    """

    default_input_size = (3, 224, 224)
    classifier_name = "fc"
    stage_names = ("conv3", "inception3b", "inception4e", "inception5b")

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError(f"transform_input works on RGB input (in_channels=3), got in_channels={in_channels}")
        self.default_input_size = (in_channels, 224, 224)
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        def inception(*channels: int) -> Inception:
            return Inception(*channels, wide_kernel_size=3, eps=BATCH_NORM_EPS)

        self.conv1 = ConvBNReLU(in_channels, 64, kernel_size=7, stride=2, padding=3, eps=BATCH_NORM_EPS)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = ConvBNReLU(64, 64, kernel_size=1, eps=BATCH_NORM_EPS)
        self.conv3 = ConvBNReLU(64, 192, kernel_size=3, padding=1, eps=BATCH_NORM_EPS)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # Table 1 columns: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        self._initialise()

    def _initialise(self) -> None:
        """Truncated N(0, 0.01²) weights for convolutions and fully connected layers, as torchvision."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _normalise_input(self, x: Tensor) -> Tensor:
        """x_c ← x_c·std_c/0.5 + (mean_c - 0.5)/0.5: ImageNet normalisation to (pixel - 0.5)/0.5."""
        if not self.transform_input:
            return x
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5

    def _trunk(self, x: Tensor, with_aux: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Features of inception5b, and the auxiliary logits when ``with_aux``."""
        x = self._normalise_input(x)
        x = self.maxpool1(self.conv1(x))  # (N, 64, H/4, W/4)
        x = self.maxpool2(self.conv3(self.conv2(x)))  # (N, 192, H/8, W/8)
        x = self.inception3b(self.inception3a(x))  # (N, 480, H/8, W/8)
        x = self.inception4a(self.maxpool3(x))  # (N, 512, H/16, W/16)
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (N, 528, H/16, W/16)
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))  # (N, 832, H/32, W/32)
        x = self.inception5b(self.inception5a(x))  # (N, 1024, H/32, W/32)
        return x, aux1, aux2

    def forward_features(self, x: Tensor) -> Tensor:
        return self._trunk(x, with_aux=False)[0]  # (N, 1024, H/32, W/32)

    def forward_head(self, features: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(features), 1)  # (N, 1024)
        return self.fc(self.dropout(x))  # (N, num_classes)

    def forward(self, x: Tensor) -> GoogLeNetOutputs | Tensor:
        with_aux = self.training and self.aux_logits
        features, aux1, aux2 = self._trunk(x, with_aux)
        logits = self.forward_head(features)
        if with_aux:
            return GoogLeNetOutputs(logits, aux1, aux2)
        return logits


@register_model
def googlenet(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> GoogLeNet:
    """GoogLeNet (Inception v1); options ``aux_logits``, ``transform_input``, ``dropout``."""
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels, **kwargs)
