"""Translation equivariance measured: convolution equivariant, pooling approximately invariant."""

import pytest
import torch

from cnnkit.data import sample_image
from cnnkit.ops import cross_correlation, equivariance_error, invariance_error, max_pool


@pytest.fixture(scope="module")
def photo():
    return sample_image("camera")[None, :, 128:320, 128:320]  # (1, 1, 192, 192) real image


def test_convolution_is_equivariant_away_from_borders(photo):
    kernel = torch.randn(4, 1, 5, 5)
    conv = lambda x: cross_correlation(x, kernel, padding="same")  # noqa: E731
    assert equivariance_error(conv, photo, (3, -5), margin=8) < 1e-5
    assert equivariance_error(conv, photo, (3, -5)) > 1e-3  # the borders do break it
    circular = lambda x: cross_correlation(x, kernel, padding="same", padding_mode="circular")  # noqa: E731
    assert equivariance_error(circular, photo, (7, 2)) < 1e-5  # a periodic signal has no border


def test_strided_layer_is_equivariant_to_whole_output_pixels(photo):
    kernel = torch.randn(2, 1, 3, 3)
    strided = lambda x: cross_correlation(x, kernel, stride=2, padding=1)  # noqa: E731
    assert equivariance_error(strided, photo, (4, 2), margin=4) < 1e-5
    with pytest.raises(ValueError, match="multiples of the layer's stride"):
        equivariance_error(strided, photo, (1, 0))


def test_a_position_dependent_map_is_not_equivariant(photo):
    ramp = torch.linspace(0, 1, photo.shape[-1])
    assert equivariance_error(lambda x: x * ramp, photo, (0, 5), margin=8) > 0.01  # 1000× a convolution's


def test_pooling_adds_approximate_invariance(photo):
    torch.manual_seed(0)
    kernel = torch.randn(4, 1, 3, 3)
    conv = lambda x: torch.relu(cross_correlation(x, kernel, padding=1))  # noqa: E731
    pooled = lambda x: max_pool(conv(x), 8)  # noqa: E731
    shift = (1, 1)
    # measured 0.71×: many window maxima survive a one-pixel shift
    assert invariance_error(pooled, photo, shift, margin=1) < 0.8 * invariance_error(conv, photo, shift, margin=8)
