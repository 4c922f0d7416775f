"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep
convolutional neural networks", §3, Fig. 2).

Five convolutional layers, three of them followed by 3×3 max pooling with stride 2
(overlapping pooling, §3.4), and three fully connected layers with dropout (§4.2). This is the
single-tower variant of Krizhevsky 2014 ("One weird trick…") with 64-192-384-256-256 kernels
and no local response normalisation, the one torchvision's ImageNet weights are for; module
names equal torchvision's, so those weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.models.registry import register_model


class AlexNet(nn.Module):
    """AlexNet. From a 224×224 image (N, in_channels, 224, 224):

        conv1 11×11, 64, s=4, p=2 → ReLU     (N, 64, 55, 55)   features.0-1
        max pool 3×3, s=2                     (N, 64, 27, 27)   features.2
        conv2 5×5, 192, p=2 → ReLU           (N, 192, 27, 27)  features.3-4
        max pool 3×3, s=2                     (N, 192, 13, 13)  features.5
        conv3 3×3, 384, p=1 → ReLU           (N, 384, 13, 13)  features.6-7
        conv4 3×3, 256, p=1 → ReLU           (N, 256, 13, 13)  features.8-9
        conv5 3×3, 256, p=1 → ReLU           (N, 256, 13, 13)  features.10-11
        max pool 3×3, s=2                     (N, 256, 6, 6)    features.12
        adaptive average pool to 6×6, so smaller inputs work too
        dropout, fc 4096, ReLU, dropout, fc 4096, ReLU, fc num_classes   classifier.0-6

    ``stage_names`` are the five convolutional layers' ReLU outputs (conv1 … conv5).
    """

    default_input_size = (3, 224, 224)
    classifier_name = "classifier.6"
    stage_names = ("features.1", "features.4", "features.7", "features.9", "features.11")

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.default_input_size = (in_channels, 224, 224)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)  # (N, 256, 6, 6) at 224×224

    def forward_head(self, features: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(features), 1)  # (N, 9216)
        return self.classifier(x)  # (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def alexnet(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> AlexNet:
    """AlexNet (single-tower, torchvision's layout)."""
    return AlexNet(num_classes=num_classes, in_channels=in_channels, **kwargs)
