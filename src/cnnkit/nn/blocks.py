"""Blocks that the classic architectures stack: the Inception module and residual blocks.

Submodule names follow torchvision's (``branch1``…``branch4``; ``conv1``, ``bn1``, …,
``downsample``) so that weights written for torchvision's GoogLeNet and ResNets load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvBNReLU(nn.Module):
    """Convolution without bias, batch normalisation, ReLU: ``relu(bn(conv(x)))``.

    The convolution has no bias because the batch norm that follows adds its own shift β.
    Submodules are named ``conv`` and ``bn`` (torchvision's ``BasicConv2d``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """The Inception module (Szegedy et al. 2015, "Going deeper with convolutions", §4, Fig. 2b).

    Four parallel branches over the same input, concatenated along channels:

        branch1: 1×1 conv → ch1x1
        branch2: 1×1 conv → ch3x3_reduce, 3×3 conv → ch3x3
        branch3: 1×1 conv → ch5x5_reduce, K×K conv → ch5x5   (K = ``wide_kernel_size``)
        branch4: 3×3 max pool (stride 1), 1×1 conv → pool_proj

    Every convolution is followed by batch norm and ReLU (:class:`ConvBNReLU`); the paper's
    module had no batch norm, which came later (Ioffe & Szegedy 2015). The 1×1 "reduce"
    convolutions cut the channels before the expensive 3×3 and K×K ones. Padding keeps the
    spatial size, so (N, C_in, H, W) → (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).

    The paper's K is 5; torchvision's GoogLeNet, whose ImageNet weights cnnkit loads, uses 3.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3_reduce: int,
        ch3x3: int,
        ch5x5_reduce: int,
        ch5x5: int,
        pool_proj: int,
        wide_kernel_size: int = 5,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if wide_kernel_size % 2 == 0:
            raise ValueError(f"wide_kernel_size must be odd to keep the spatial size, got {wide_kernel_size}")
        self.branch1 = ConvBNReLU(in_channels, ch1x1, kernel_size=1, eps=eps)
        self.branch2 = nn.Sequential(
            ConvBNReLU(in_channels, ch3x3_reduce, kernel_size=1, eps=eps),
            ConvBNReLU(ch3x3_reduce, ch3x3, kernel_size=3, padding=1, eps=eps),
        )
        self.branch3 = nn.Sequential(
            ConvBNReLU(in_channels, ch5x5_reduce, kernel_size=1, eps=eps),
            ConvBNReLU(ch5x5_reduce, ch5x5, kernel_size=wide_kernel_size, padding=wide_kernel_size // 2, eps=eps),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            ConvBNReLU(in_channels, pool_proj, kernel_size=1, eps=eps),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, dim=1)  # (N, out_channels, H, W)


def _projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """He et al. 2016 "option B": a strided 1×1 convolution and batch norm where the shape changes."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Residual block of two 3×3 convolutions (He et al. 2016, "Deep residual learning", Fig. 2).

    out = relu(F(x) + shortcut(x)), F(x) = bn2(conv2(relu(bn1(conv1(x))))).

    ``conv1`` carries the stride. The shortcut is the identity when the shape is unchanged,
    otherwise a projection (``downsample``: 1×1 conv with the stride, then batch norm; the
    paper's option B). (N, in_channels, H, W) → (N, channels, H/stride, W/stride).
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        needs_projection = stride != 1 or in_channels != channels
        self.downsample = _projection_shortcut(in_channels, channels, stride) if needs_projection else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """Residual bottleneck block: 1×1 reduce, 3×3, 1×1 expand ×4 (He et al. 2016, §4.1, Fig. 5 right).

    out = relu(F(x) + shortcut(x)), F = bn3∘conv3 ∘ relu∘bn2∘conv2 ∘ relu∘bn1∘conv1, with
    ``conv1`` 1×1 → channels, ``conv2`` 3×3 → channels carrying the stride, ``conv3`` 1×1 →
    4·channels. The stride sits on the 3×3 convolution as in torchvision ("ResNet v1.5"); the
    paper put it on the first 1×1. Shortcut as in :class:`BasicBlock`.
    (N, in_channels, H, W) → (N, 4·channels, H/stride, W/stride).
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_channels != out_channels
        self.downsample = _projection_shortcut(in_channels, out_channels, stride) if needs_projection else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ZeroPadShortcut(nn.Module):
    """He et al. 2016 "option A" shortcut (§4.2, CIFAR-10): subsample, then zero-pad channels.

    x[:, :, ::s, ::s] keeps every s-th pixel, and the missing out_channels - in_channels
    channels are zeros, split evenly before and after the existing ones (as the reference
    CIFAR implementation does). It has no parameters.
    (N, in_channels, H, W) → (N, out_channels, ⌈H/s⌉, ⌈W/s⌉).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option A can only add channels, got {in_channels} → {out_channels}")
        self.stride = stride
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))  # pads (W, H, C) from the last dim

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels=({self.pad_before}, {self.pad_after})"


class CifarBasicBlock(nn.Module):
    """The basic residual block of He et al. 2016's CIFAR-10 networks (§4.2), option A shortcut.

    out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)) with two 3×3 convolutions, the
    first carrying the stride; the shortcut is the identity or, where the shape changes, the
    parameter-free :class:`ZeroPadShortcut`, so every CIFAR ResNet has exactly as many
    parameters as its plain counterpart. (N, in_channels, H, W) → (N, channels, H/s, W/s).
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        needs_shortcut = stride != 1 or in_channels != channels
        self.shortcut = ZeroPadShortcut(in_channels, channels, stride) if needs_shortcut else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))
