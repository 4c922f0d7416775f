"""Building blocks as modules, the compact network description and the per-layer summary."""

from cnnkit.nn.blocks import BasicBlock, Bottleneck, CifarBasicBlock, ConvBNReLU, Inception, ZeroPadShortcut
from cnnkit.nn.description import GRAMMAR, LENET_DESCRIPTION, DescriptionError, build_network, describe, parse_description
from cnnkit.nn.layers import ACTIVATIONS, ConvBlock, FullyConnectedBlock, activation_layer, pooling_layer
from cnnkit.nn.summary import LayerSummary, Summary, depth, summarize
