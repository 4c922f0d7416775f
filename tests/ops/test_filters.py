"""Classic filters against scipy.ndimage, on a real photo."""

import numpy as np
import pytest
import scipy.ndimage as ndimage
import torch

from cnnkit.data import sample_image
from cnnkit.ops import KERNELS, edge_magnitude, kernel
from cnnkit.ops.filters import filter_image, parse_kernel


@pytest.fixture(scope="module")
def photo():
    return sample_image("camera")[:, 100:260, 150:330].double()  # (1, 160, 180)


def apply(image, name, **options):
    return filter_image(image, kernel(name, **options).double(), padding="same", padding_mode="replicate")[0].numpy()


@pytest.mark.parametrize("name,axis,reference", [
    ("sobel-x", 1, ndimage.sobel), ("sobel-y", 0, ndimage.sobel),
    ("prewitt-x", 1, ndimage.prewitt), ("prewitt-y", 0, ndimage.prewitt),
])
def test_derivatives_match_scipy(photo, name, axis, reference):
    np.testing.assert_allclose(apply(photo, name), reference(photo[0].numpy(), axis=axis, mode="nearest"), atol=1e-10)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])  # where scipy's truncation radius equals ours, ⌈3σ⌉
def test_gaussian_matches_scipy(photo, sigma):
    expected = ndimage.gaussian_filter(photo[0].numpy(), sigma, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(apply(photo, "gaussian", sigma=sigma), expected, atol=1e-6)


def test_laplacian_box_and_identity(photo):
    np.testing.assert_allclose(apply(photo, "laplacian"), ndimage.laplace(photo[0].numpy(), mode="nearest"), atol=1e-10)
    np.testing.assert_allclose(apply(photo, "box", size=5), ndimage.uniform_filter(photo[0].numpy(), 5, mode="nearest"), atol=1e-10)
    np.testing.assert_allclose(apply(photo, "identity"), photo[0].numpy())


def test_kernel_sums():
    for name in ("identity", "box", "gaussian", "sharpen", "unsharp", "emboss"):
        assert float(kernel(name).sum()) == pytest.approx(1.0, abs=1e-6), name  # brightness kept
    for name in ("sobel-x", "sobel-y", "prewitt-x", "prewitt-y", "scharr-x", "scharr-y", "laplacian"):
        assert float(kernel(name).sum()) == 0.0, name  # no response to a flat image
    assert set(KERNELS) >= {"sobel-x", "scharr-y", "gaussian", "unsharp", "emboss"}


def test_unsharp_mask_is_image_plus_detail(photo):
    blurred = apply(photo, "gaussian", sigma=1.0)
    np.testing.assert_allclose(apply(photo, "unsharp", sigma=1.0, amount=0.7), photo[0].numpy() + 0.7 * (photo[0].numpy() - blurred), atol=1e-6)


def test_edge_magnitude_is_the_gradient_norm(photo):
    image = photo[0].numpy()
    expected = np.hypot(ndimage.sobel(image, 1, mode="nearest"), ndimage.sobel(image, 0, mode="nearest"))
    np.testing.assert_allclose(edge_magnitude(photo)[0].numpy(), expected, atol=1e-10)


def test_sobel_x_responds_to_brightness_growing_rightwards():
    ramp = torch.arange(8.0).repeat(8, 1)[None]  # (1, 8, 8), brighter to the right
    assert (filter_image(ramp, kernel("sobel-x"), padding="valid") > 0).all()
    assert (filter_image(ramp, kernel("sobel-x"), padding="valid", flip=True) < 0).all()  # convolution flips it


def test_parse_kernel():
    torch.testing.assert_close(parse_kernel("1,0,-1;2,0,-2;1,0,-1"), kernel("sobel-x").flip(1))
    with pytest.raises(ValueError, match="same number of values"):
        parse_kernel("1,2;3")
    with pytest.raises(ValueError, match="neither a name"):
        parse_kernel("sobel")
    with pytest.raises(ValueError, match="sigma must be positive"):
        kernel("gaussian", sigma=0)
