"""The convolution as a matrix: multiplying by it is the convolution; its counts are the lecture's."""

import pytest
import torch

from cnnkit.ops import connectivity, convolution, convolution_matrix, cross_correlation


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), ((1, 2), "same", (2, 1)), (1, "full", 1)])
def test_matrix_times_input_is_the_cross_correlation(padding_mode, stride, padding, dilation):
    if padding_mode == "reflect" and padding == "full":
        padding = 1
    x = torch.randn(3, 7, 8, dtype=torch.float64)
    kernel = torch.randn(2, 3, 3, 2, dtype=torch.float64)
    matrix = convolution_matrix(kernel, (7, 8), stride, padding, dilation, padding_mode)
    expected = cross_correlation(x[None], kernel, None, stride, padding, dilation, padding_mode=padding_mode)[0]
    torch.testing.assert_close((matrix @ x.flatten()[:, None]).view_as(expected), expected)


def test_flip_gives_the_convolution():
    x, kernel = torch.randn(1, 6, 6, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    matrix = convolution_matrix(kernel, (6, 6), padding="full", flip=True)
    expected = convolution(x[None], kernel[None, None], padding="full")[0]
    torch.testing.assert_close((matrix @ x.flatten()[:, None]).view_as(expected), expected)


def test_counts_show_sparse_connectivity_and_parameter_sharing():
    counts = connectivity(torch.randn(3, 3), (10, 10))
    assert counts.output_shape == (1, 8, 8)
    assert counts.connections == 64 * 9  # each output sees K·K inputs
    assert counts.dense_connections == 64 * 100
    assert counts.parameters == 9
    assert counts.uses_per_parameter == 64  # every weight reused at every output position
    assert counts.sparsity == pytest.approx(1 - 9 / 100)
    padded = connectivity(torch.randn(2, 3, 3, 3), (9, 7), stride=2, padding=1)
    assert padded.connections == convolution_matrix(torch.ones(2, 3, 3, 3), (9, 7), 2, 1)._nnz()
    layer = connectivity(torch.randn(64, 64, 3, 3), (56, 56), padding=1)
    assert layer.parameters == 36_864
    assert layer.connections == 64 * 64 * (56 * 56 * 9 - 4 * 56 * 3 + 4)  # border outputs lose padded taps
    assert layer.sparsity > 0.997


def test_bad_kernel_shape():
    with pytest.raises(ValueError, match="kernel must be"):
        convolution_matrix(torch.randn(3), (5, 5))
