"""Classifiers and backbones, one family per module, built by name with :func:`create_model`.

Every model takes ``num_classes`` and ``in_channels`` and has ``forward_features`` (the
convolutional trunk), ``forward_head`` (pooling and classifier) and ``forward``; its
``default_input_size`` (C, H, W), ``classifier_name`` (the final ``nn.Linear`` a new head
replaces) and ``stage_names`` (the main feature stages, shallow to deep) let transfer learning,
detection and visualisation use it without knowing its layout. :func:`extract_features` returns
the outputs of any named submodules.
"""

from cnnkit.models.registry import create_model, list_models, register_model
from cnnkit.models.alexnet import AlexNet, alexnet
from cnnkit.models.features import extract_features
from cnnkit.models.googlenet import GoogLeNet, GoogLeNetOutputs, googlenet, googlenet_loss
from cnnkit.models.lenet import LeNet5, SampleNet, lenet5, sample_net
from cnnkit.models.resnet import (
    CifarResNet,
    ResNet,
    resnet18,
    resnet20,
    resnet32,
    resnet34,
    resnet44,
    resnet50,
    resnet56,
    resnet101,
    resnet110,
    resnet152,
)
from cnnkit.models.vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn

__all__ = [
    "AlexNet",
    "CifarResNet",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "LeNet5",
    "ResNet",
    "SampleNet",
    "VGG",
    "alexnet",
    "create_model",
    "extract_features",
    "googlenet",
    "googlenet_loss",
    "lenet5",
    "list_models",
    "register_model",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet110",
    "resnet152",
    "sample_net",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]
