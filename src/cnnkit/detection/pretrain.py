"""Supervised pre-training of a detection backbone on single digits (R-CNN §2.3, "supervised
pre-training": the CNN learns to classify before it learns to detect; the lecture's detectors
start from an ImageNet classifier, digit scenes from a digit classifier).

The training digits of digit scenes (the same third of scikit-learn's digits, so the test
digits stay unseen) are drawn at random sizes and positions on small noisy canvases, like in a
scene, and the backbone with global average pooling and a linear layer learns their class.
The linear layer is discarded; the backbone keeps what it learnt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.data.scenes import SPLITS
from cnnkit.detection.transform import IMAGENET_MEAN, IMAGENET_STD


def digit_crops(count: int, canvas: int = 48, min_size: int = 20, max_size: int = 44, seed: int = 0):
    """``count`` single-digit images ``(count, 3, canvas, canvas)`` and labels 0..9 from the
    training third of scikit-learn's digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float()[SPLITS["train"] :: 3] / 16.0
    classes = torch.from_numpy(digits.target).long()[SPLITS["train"] :: 3]
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 1, canvas, canvas, generator=generator) * 0.1
    labels = torch.empty(count, dtype=torch.int64)
    for i in range(count):
        index = int(torch.randint(len(pixels), (1,), generator=generator))
        size = int(torch.randint(min_size, max_size + 1, (1,), generator=generator))
        top, left = (int(v) for v in torch.randint(0, canvas - size + 1, (2,), generator=generator))
        digit = F.interpolate(pixels[index][None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        brightness = 0.6 + 0.4 * float(torch.rand(1, generator=generator))
        region = images[i, 0, top : top + size, left : left + size]
        images[i, 0, top : top + size, left : left + size] = torch.maximum(region, digit.clamp(0, 1) * brightness)
        labels[i] = classes[index]
    return images.expand(-1, 3, -1, -1).contiguous(), labels


def pretrain_backbone(backbone: nn.Module, steps: int = 300, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                      log=print) -> float:
    """Train ``backbone`` (a single-map detection backbone) as a 10-way digit classifier with
    AdamW; returns the accuracy on 500 held-back crops of the same training digits."""
    torch.manual_seed(seed)
    images, labels = digit_crops(steps * batch_size // 4 + 500, seed=seed)
    held_images, held_labels = images[-500:], labels[-500:]
    images, labels = images[:-500], labels[:-500]
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    head = nn.Linear(backbone.out_channels, 10)
    optimizer = torch.optim.AdamW([*backbone.parameters(), *head.parameters()], lr=lr, weight_decay=1e-4)

    def logits(x):
        features = list(backbone((x - mean) / std).values())[-1]
        return head(features.mean((2, 3)))  # global average pooling, (N, C) → (N, 10)

    backbone.train()
    for step in range(steps):
        chosen = torch.randint(len(images), (batch_size,))
        loss = F.cross_entropy(logits(images[chosen]), labels[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    backbone.eval()
    with torch.no_grad():
        accuracy = float((logits(held_images).argmax(1) == held_labels).float().mean())
    log(f"backbone pre-trained on digits: {steps} steps, accuracy {accuracy:.1%} on held-back crops")
    return accuracy
