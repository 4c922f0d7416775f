"""Fully convolutional networks (Long, Shelhamer & Darrell 2015, "Fully convolutional networks
for semantic segmentation").

A classifier's convolutional trunk already computes a feature for every region of the image;
replacing its pooled classifier by a 1×1 convolution gives class scores on a coarse grid
(stride 32), and upsampling them back to the image gives a class score per pixel (§3).

- `FCN` (§4.2, Fig. 3): a cnnkit ResNet trunk with 1×1 class scores on its stride-32, 16 and 8
  stages. FCN-32s upsamples the stride-32 scores 32× in one step; FCN-16s first upsamples them
  2×, adds the scores of the stride-16 stage and upsamples 16×; FCN-8s adds the stride-8
  stage's scores as well and upsamples 8×. Every upsampling is a learned transposed
  convolution initialised to bilinear interpolation (§3.3); the skip scores start at zero, so
  a finer net starts as the coarser one.
- `FCNResNet` and `fcn_resnet50`: torchvision's ``fcn_resnet50`` layout — a ResNet-50 whose
  layer3 and layer4 keep stride 8 through dilated (atrous) convolutions, an `FCNHead` classifier
  on layer4 and optionally an auxiliary one on layer3, bilinear upsampling to the input. Module
  names equal torchvision's, so its state dicts load unchanged and give the same output.

Inputs are images normalised with the ImageNet mean and std; outputs are ``(N, K, H, W)`` logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.models import create_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """``(C, C, k, k)`` weights of a transposed convolution that upsamples each channel bilinearly.

    With f = ⌈k/2⌉ and centre c = f − 1 (k odd) or f − 1/2 (k even), the 2-D filter is
    w(y, x) = (1 − |y − c|/f)(1 − |x − c|/f) on the diagonal (channel to itself), 0 elsewhere.
    For k = 2s, stride s and padding s/2 this equals ``F.interpolate(mode="bilinear",
    align_corners=False)`` by s away from the border.
    """
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = taps[:, None] * taps[None, :]
    return weight


def learned_upsampling(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A transposed convolution (kernel 2f, stride f, padding f/2) scaling H, W by ``factor``
    exactly: out = (n − 1)f − 2(f/2) + 2f = nf; initialised bilinear, learnable (§3.3)."""
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return layer


class ResNetTrunk(nn.Module):
    """A cnnkit ResNet without average pooling and classifier; ``forward`` returns the outputs
    of layer2, layer3 and layer4 (strides 8, 16 and 32, or less where dilated)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(resnet, name))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        c3 = self.layer2(self.layer1(x))  # (N, 128c, H/8, W/8)
        c4 = self.layer3(c3)  # (N, 256c, H/16, W/16)
        c5 = self.layer4(c4)  # (N, 512c, H/32, W/32)
        return c3, c4, c5


def _width(stage: nn.Sequential) -> int:
    last = stage[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def _crop(x: Tensor, size) -> Tensor:
    """The top-left ``size`` (H, W) of ``x``: padding-aligned maps differ by rounding up only."""
    return x[..., : size[0], : size[1]]


class FCN(nn.Module):
    """FCN-32s, 16s or 8s (``variant``) on a cnnkit ResNet (``backbone``: a registry name).

        trunk                                   c3 (N, C3, H/8), c4 (N, C4, H/16), c5 (N, C5, H/32)
        score_fr = 1×1 conv(c5)                 (N, K, H/32, W/32)
        32s: upscore32(score_fr)                 (N, K, H, W)
        16s: upscore2(score_fr) + score_pool4(c4) → upscore16
        8s:  … → upscore_pool4(·) + score_pool3(c3) → upscore8
    """

    VARIANTS = ("32s", "16s", "8s")

    def __init__(self, num_classes: int, variant: str = "8s", backbone: str = "resnet18") -> None:
        super().__init__()
        if variant not in self.VARIANTS:
            raise ValueError(f"unknown FCN variant {variant!r}; choose one of {', '.join(self.VARIANTS)}")
        resnet = create_model(backbone)
        if not all(hasattr(resnet, name) for name in ("layer2", "layer3", "layer4", "maxpool")):
            raise ValueError(f"FCN needs an ImageNet-layout ResNet backbone (resnet18 … resnet152), not {backbone}")
        self.variant, self.num_classes = variant, num_classes
        self.backbone = ResNetTrunk(resnet)
        widths = [_width(resnet.layer2), _width(resnet.layer3), _width(resnet.layer4)]
        self.score_fr = nn.Conv2d(widths[2], num_classes, 1)
        if variant == "32s":
            self.upscore32 = learned_upsampling(num_classes, 32)
        else:
            self.upscore2 = learned_upsampling(num_classes, 2)
            self.score_pool4 = _zero_conv(widths[1], num_classes)
        if variant == "16s":
            self.upscore16 = learned_upsampling(num_classes, 16)
        if variant == "8s":
            self.upscore_pool4 = learned_upsampling(num_classes, 2)
            self.score_pool3 = _zero_conv(widths[0], num_classes)
            self.upscore8 = learned_upsampling(num_classes, 8)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        c3, c4, c5 = self.backbone(x)
        scores = self.score_fr(c5)  # (N, K, H/32, W/32)
        if self.variant == "32s":
            return _crop(self.upscore32(scores), size)
        pool4 = self.score_pool4(c4)  # (N, K, H/16, W/16)
        scores = _crop(self.upscore2(scores), pool4.shape[-2:]) + pool4
        if self.variant == "16s":
            return _crop(self.upscore16(scores), size)
        pool3 = self.score_pool3(c3)  # (N, K, H/8, W/8)
        scores = _crop(self.upscore_pool4(scores), pool3.shape[-2:]) + pool3
        return _crop(self.upscore8(scores), size)  # (N, K, H, W)

    def loss(self, images: Tensor, masks: Tensor, ignore_index: int = 255) -> Tensor:
        """Per-pixel cross-entropy averaged over the pixels that are not void."""
        return F.cross_entropy(self(images), masks, ignore_index=ignore_index)


def _zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    layer = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


# --- torchvision's fcn_resnet50 ---------------------------------------------------------------

def dilate_stage(stage: nn.Sequential, previous_dilation: int, dilation: int) -> None:
    """Replace a stage's stride 2 by dilation (atrous convolution, Chen et al. 2015), in place:
    the first block's 3×3 convolution and shortcut get stride 1 (and the dilation before the
    stage), the later blocks' 3×3 convolutions dilation ``dilation`` with padding to match, so
    the output keeps the input's resolution and each later filter sees the same extent."""
    for index, block in enumerate(stage):
        rate = previous_dilation if index == 0 else dilation
        block.conv2.stride, block.conv2.dilation, block.conv2.padding = (1, 1), (rate, rate), (rate, rate)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)


class FCNHead(nn.Sequential):
    """3×3 conv (C → C/4, no bias), batch norm, ReLU, dropout 0.1, 1×1 conv to K classes:
    ``(N, C, h, w) → (N, K, h, w)``. Indices as torchvision's (``0``, ``1``, ``4``)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        inner = in_channels // 4
        super().__init__(nn.Conv2d(in_channels, inner, 3, padding=1, bias=False), nn.BatchNorm2d(inner),
                         nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(inner, num_classes, 1))


class FCNResNet(nn.Module):
    """``backbone`` (dilated ResNet trunk, stride 8) → ``classifier`` (`FCNHead` on layer4) →
    bilinear upsampling to the input; ``aux_classifier`` on layer3 when built with ``aux``."""

    def __init__(self, resnet: nn.Module, num_classes: int, aux: bool = False) -> None:
        super().__init__()
        dilate_stage(resnet.layer3, 1, 2)
        dilate_stage(resnet.layer4, 2, 4)
        self.backbone = ResNetTrunk(resnet)
        self.classifier = FCNHead(_width(resnet.layer4), num_classes)
        self.aux_classifier = FCNHead(_width(resnet.layer3), num_classes) if aux else None
        self.num_classes = num_classes

    def logits_and_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(out, aux)`` logits ``(N, K, H, W)``; aux is None without an auxiliary classifier."""
        size = x.shape[-2:]
        _, c4, c5 = self.backbone(x)  # both (N, ·, H/8, W/8)
        out = F.interpolate(self.classifier(c5), size=size, mode="bilinear", align_corners=False)
        if self.aux_classifier is None:
            return out, None
        return out, F.interpolate(self.aux_classifier(c4), size=size, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_and_aux(x)[0]

    def loss(self, images: Tensor, masks: Tensor, ignore_index: int = 255) -> Tensor:
        """Cross-entropy of the main output plus 0.5 × that of the auxiliary one (torchvision's recipe)."""
        out, aux = self.logits_and_aux(images)
        loss = F.cross_entropy(out, masks, ignore_index=ignore_index)
        if aux is not None:
            loss = loss + 0.5 * F.cross_entropy(aux, masks, ignore_index=ignore_index)
        return loss


def fcn_resnet50(num_classes: int = 21, aux: bool = False,
                 memory_format: torch.memory_format = torch.channels_last) -> FCNResNet:
    """FCN ResNet-50 with torchvision's ``fcn_resnet50`` layout (21 VOC classes by default; its
    COCO-trained file has an auxiliary classifier: pass ``aux=True``)."""
    return FCNResNet(create_model("resnet50", memory_format=memory_format), num_classes, aux).to(
        memory_format=memory_format)
