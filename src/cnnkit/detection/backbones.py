"""Backbones: a classifier's convolutional trunk, returning named feature maps.

A backbone maps ``(N, 3, H, W)`` to an ordered dict of feature maps and has ``out_channels``.

- `ResNetFPN` (Lin et al. 2017, "Feature pyramid networks", §3): a cnnkit ResNet's stages
  C2..C5 (``body``) and a top-down pathway with lateral 1×1 connections and 3×3 output
  convolutions (``fpn``), P2..P5 plus P6 = max-pool(P5) for the RPN. Module names equal
  torchvision's ``resnet_fpn_backbone``, so a ``fasterrcnn_resnet50_fpn`` state dict loads.
- `ResNetC4` (Faster R-CNN §4 with ResNet, He et al. 2016 appendix A): the trunk up to C4,
  stride 16, one feature map.
- `SmallBackbone`: four conv-BN-ReLU stages to stride 8, a few hundred thousand parameters:
  enough for digit scenes, and minutes to train on a CPU.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from cnnkit.models import create_model
from cnnkit.nn.blocks import ConvBNReLU


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d with the same statistics and affine
    parameters (detection batches are too small to estimate batch statistics)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)
    return module


class ResNetBody(nn.Module):
    """A cnnkit ResNet without its pooling and classifier: returns the outputs of ``layer1..4``
    (C2..C5, strides 4, 8, 16, 32) under the names ``"0".."3"``, or only those asked for."""

    def __init__(self, resnet: nn.Module, return_layers: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4")) -> None:
        super().__init__()
        last = max(resnet.stage_names.index(name) for name in return_layers)
        for name in ("conv1", "bn1", "relu", "maxpool", *resnet.stage_names[: last + 1]):
            self.add_module(name, getattr(resnet, name))
        self.return_layers = return_layers

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        out = OrderedDict()
        for name, module in self.named_children():
            x = module(x)
            if name in self.return_layers:
                out[str(len(out))] = x
        return out


class FeaturePyramidNetwork(nn.Module):
    """FPN §3: P_l = conv3×3(lateral_l(C_l) + upsample_nearest(P'_{l+1})), all ``out_channels``
    wide; P6 = max_pool(P5, 1, stride 2) named "pool". Names as torchvision's."""

    def __init__(self, in_channels_list: list[int], out_channels: int = 256) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(c, out_channels, 1)) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1)) for _ in in_channels_list)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
                nn.init.constant_(module.bias, 0)

    def forward(self, features: OrderedDict[str, Tensor]) -> OrderedDict[str, Tensor]:
        names, maps = list(features.keys()), list(features.values())
        top_down = self.inner_blocks[-1](maps[-1])
        results = [self.layer_blocks[-1](top_down)]
        for level in range(len(maps) - 2, -1, -1):
            lateral = self.inner_blocks[level](maps[level])
            top_down = lateral + F.interpolate(top_down, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[level](top_down))
        names.append("pool")
        results.append(F.max_pool2d(results[-1], 1, 2, 0))
        return OrderedDict(zip(names, results))


class ResNetFPN(nn.Module):
    """``body`` (C2..C5 of a ResNet with frozen batch norm) then ``fpn``: five maps of 256 channels."""

    def __init__(self, resnet: nn.Module, out_channels: int = 256) -> None:
        super().__init__()
        self.body = ResNetBody(freeze_batch_norm(resnet))
        widths = [_stage_width(stage) for stage in
                  (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)]
        self.fpn = FeaturePyramidNetwork(widths, out_channels)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.fpn(self.body(x))


def _stage_width(stage: nn.Sequential) -> int:
    last = stage[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


class ResNetC4(nn.Module):
    """A ResNet's trunk up to layer3 (C4, stride 16) as one map named "0"."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.body = ResNetBody(freeze_batch_norm(resnet), return_layers=("layer3",))
        self.out_channels = _stage_width(resnet.layer3)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.body(x)


class VGGConv5(nn.Module):
    """A VGG's convolutional trunk up to conv5_3 and its ReLU, without the last max pool: the
    stride-16, 512-channel map that Fast R-CNN (§2) and Faster R-CNN (§3) share, as one map "0"."""

    def __init__(self, vgg: nn.Module) -> None:
        super().__init__()
        self.body = vgg.features[:-1]
        self.out_channels = 512

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict([("0", self.body(x))])  # (N, 512, H/16, W/16)


class SmallBackbone(nn.Module):
    """conv-BN-ReLU stages 32, 64, 128, 128 wide; strides 2, 2, 2, 1 (stride 8 in all):
    ``(N, 3, H, W) → {"0": (N, 128, H/8, W/8)}``."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        layers, in_channels = [], 3
        for i, width in enumerate(widths):
            layers.append(ConvBNReLU(in_channels, width, 3, stride=2 if i < 3 else 1, padding=1))
            layers.append(ConvBNReLU(width, width, 3, padding=1))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict([("0", self.features(x))])


def build_backbone(name: str, memory_format: torch.memory_format = torch.channels_last) -> nn.Module:
    """``"small"``, ``"vgg16"`` (conv5_3), ``"resnet18-c4"``, ``"resnet50-c4"``, ``"resnet18-fpn"``,
    ``"resnet50-fpn"`` (VGG and ResNets from `cnnkit.models.create_model`, randomly initialised). Convolution weights are
    stored in ``memory_format``: channels_last is faster on CPUs; the plain layout reproduces
    torchvision's arithmetic bit for bit."""
    if name == "small":
        return SmallBackbone().to(memory_format=memory_format)
    if name == "vgg16":
        return VGGConv5(create_model("vgg16", memory_format=memory_format))
    family, _, kind = name.partition("-")
    if kind == "fpn":
        return ResNetFPN(create_model(family, memory_format=memory_format)).to(memory_format=memory_format)
    if kind == "c4":
        return ResNetC4(create_model(family, memory_format=memory_format))
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


BACKBONES = ("small", "vgg16", "resnet18-c4", "resnet50-c4", "resnet18-fpn", "resnet50-fpn")


@torch.no_grad()
def fold_frozen_batch_norm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with each frozen batch norm folded into the convolution
    whose output it takes (``conv1``→``bn1``, ``conv2``→``bn2``, ``conv3``→``bn3`` and a shortcut's
    ``0``→``1``): with s = γ / √(σ² + ε), W' = W·s per output channel and b' = β − μ·s, and the
    batch norm becomes an identity. One pass over memory less per layer; the same function up to
    float rounding. ``model`` itself is not changed; the copy's state dict has other keys."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        for conv_name, norm_name in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("0", "1")):
            conv, norm = module._modules.get(conv_name), module._modules.get(norm_name)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, FrozenBatchNorm2d):
                scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
                bias = norm.bias - norm.running_mean * scale
                if conv.bias is not None:
                    bias = bias + conv.bias * scale
                conv.weight.mul_(scale[:, None, None, None])
                conv.bias = nn.Parameter(bias)
                setattr(module, norm_name, nn.Identity())
    return model
