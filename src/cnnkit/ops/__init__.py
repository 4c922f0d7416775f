"""The lecture's mathematics as plain functions on tensors.

- :mod:`~cnnkit.ops.convolution`: ``convolution`` (kernel flipped) and ``cross_correlation``
  (what layers compute), 1-3 D, with stride, padding modes, dilation and groups.
- :mod:`~cnnkit.ops.pooling`: ``max_pool`` (with switches), ``max_unpool``, ``avg_pool``, ``lp_pool``, ``l2_pool``.
- :mod:`~cnnkit.ops.shapes`: ``output_size``, ``same_padding``, ``receptive_field``.
- :mod:`~cnnkit.ops.matrix`: ``convolution_matrix``, ``connectivity``.
- :mod:`~cnnkit.ops.equivariance`: ``equivariance_error``, ``invariance_error``.
- :mod:`~cnnkit.ops.filters`: named classic kernels and ``edge_magnitude``.
- :mod:`~cnnkit.ops.reference`: the slides' loops, the oracle for the tests.
"""

from cnnkit.ops.convolution import convolution, cross_correlation
from cnnkit.ops.equivariance import equivariance_error, invariance_error, shift
from cnnkit.ops.filters import KERNELS, edge_magnitude, kernel
from cnnkit.ops.matrix import Connectivity, connectivity, convolution_matrix
from cnnkit.ops.padding import PADDING_MODES, pad
from cnnkit.ops.pooling import avg_pool, l2_pool, lp_pool, max_pool, max_unpool
from cnnkit.ops.shapes import FieldStep, Layer, output_size, receptive_field, same_padding

__all__ = [
    "KERNELS",
    "PADDING_MODES",
    "Connectivity",
    "FieldStep",
    "Layer",
    "avg_pool",
    "connectivity",
    "convolution",
    "convolution_matrix",
    "cross_correlation",
    "edge_magnitude",
    "equivariance_error",
    "invariance_error",
    "kernel",
    "l2_pool",
    "lp_pool",
    "max_pool",
    "max_unpool",
    "output_size",
    "pad",
    "receptive_field",
    "same_padding",
    "shift",
]
