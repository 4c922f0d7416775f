"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale image
recognition", §2, Table 1).

Only 3×3 convolutions with stride 1 and padding 1, ReLU after each, and 2×2 max pooling with
stride 2 between five blocks of 64, 128, 256, 512 and 512 channels; then three fully
connected layers. Configurations A, B, D and E of Table 1 are VGG-11, -13, -16 and -19; the
``_bn`` variants put batch normalisation after every convolution (not in the paper; torchvision
trained them). Module names equal torchvision's, so its ImageNet weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.models.registry import register_model

POOL = "M"

# Table 1: the number of output channels of each 3×3 convolution, "M" a 2×2 max pooling.
CONFIGURATIONS: dict[int, list[int | str]] = {
    11: [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],  # A
    13: [64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],  # B
    16: [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL],  # D
    19: [64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512, 512, 512, 512, POOL],  # E
}


def make_features(configuration: list[int | str], batch_norm: bool, in_channels: int) -> nn.Sequential:
    """The convolutional trunk: conv 3×3 (p=1) [→ batch norm] → ReLU per number, max pool 2×2 per "M"."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in configuration:
        if item == POOL:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return nn.Sequential(*layers)


def _paper_layer_names(features: nn.Sequential) -> dict[str, str]:
    """``{"conv1_1": "features.0", "relu1_1": "features.1", …, "pool5": "features.30"}`` (VGG-16)."""
    names: dict[str, str] = {}
    block, index_in_block = 1, 0
    for index, module in enumerate(features):
        path = f"features.{index}"
        if isinstance(module, nn.Conv2d):
            index_in_block += 1
            names[f"conv{block}_{index_in_block}"] = path
        elif isinstance(module, nn.BatchNorm2d):
            names[f"bn{block}_{index_in_block}"] = path
        elif isinstance(module, nn.ReLU):
            names[f"relu{block}_{index_in_block}"] = path
        elif isinstance(module, nn.MaxPool2d):
            names[f"pool{block}"] = path
            block, index_in_block = block + 1, 0
    return names


class VGG(nn.Module):
    """VGG-``depth``. From (N, in_channels, 224, 224): five blocks of 3×3 convolutions, each
    halving the size with max pooling, give (N, 512, 7, 7); an adaptive average pool to 7×7
    lets smaller inputs through; then fc 4096, ReLU, dropout, fc 4096, ReLU, dropout,
    fc num_classes (``classifier.0-6``).

    ``stage_names`` are the last ReLU of each block, before its pooling (conv1_2, conv2_2,
    conv3_3, conv4_3, conv5_3 for VGG-16), at strides 1, 2, 4, 8 and 16. Every convolution's
    ReLU can be asked for by name with :func:`cnnkit.models.extract_features`, as style
    transfer does; :attr:`layer_names` maps the paper's names (``conv4_2``, ``relu4_2``,
    ``pool4``) to module paths (``conv4_2`` is ``features.21`` in VGG-19).
    """

    default_input_size = (3, 224, 224)
    classifier_name = "classifier.6"

    def __init__(
        self, depth: int, batch_norm: bool = False, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if depth not in CONFIGURATIONS:
            raise ValueError(f"VGG depth must be one of {sorted(CONFIGURATIONS)}, got {depth}")
        self.default_input_size = (in_channels, 224, 224)
        self.features = make_features(CONFIGURATIONS[depth], batch_norm, in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        self.layer_names = _paper_layer_names(self.features)
        self.stage_names = tuple(  # the ReLU just before each max pooling
            f"features.{index - 1}" for index, module in enumerate(self.features) if isinstance(module, nn.MaxPool2d)
        )
        self._initialise()

    def _initialise(self) -> None:
        """He initialisation for convolutions, N(0, 0.01²) for fully connected layers, as torchvision."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)  # (N, 512, H/32, W/32)

    def forward_head(self, features: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(features), 1)  # (N, 25088)
        return self.classifier(x)  # (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def vgg11(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> VGG:
    """VGG-11, configuration A."""
    return VGG(11, batch_norm=False, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg11_bn(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> VGG:
    """VGG-11 with batch norm."""
    return VGG(11, batch_norm=True, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg13(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> VGG:
    """VGG-13, configuration B."""
    return VGG(13, batch_norm=False, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg13_bn(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> VGG:
    """VGG-13 with batch norm."""
    return VGG(13, batch_norm=True, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg16(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> VGG:
    """VGG-16, configuration D."""
    return VGG(16, batch_norm=False, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg16_bn(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> VGG:
    """VGG-16 with batch norm."""
    return VGG(16, batch_norm=True, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg19(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> VGG:
    """VGG-19, configuration E (the network of Gatys et al.'s style transfer)."""
    return VGG(19, batch_norm=False, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg19_bn(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> VGG:
    """VGG-19 with batch norm."""
    return VGG(19, batch_norm=True, num_classes=num_classes, in_channels=in_channels, **kwargs)
