"""Pooling against scipy.ndimage, torch and the lecture's loop."""

import numpy as np
import pytest
import scipy.ndimage as ndimage
import torch
import torch.nn.functional as F

from cnnkit.ops import avg_pool, l2_pool, lp_pool, max_pool, max_unpool, output_size
from cnnkit.ops.reference import max_pool_loop


@pytest.mark.parametrize("size,stride", [((3, 3), (2, 2)), ((3, 1), (1, 2)), ((5, 3), (3, 1))])
def test_max_average_and_l2_match_scipy(size, stride):
    """scipy's filters centre odd windows; the valid centres, strided, are the pooled outputs."""
    x = np.random.default_rng(1).standard_normal((2, 3, 13, 12))
    maxima = np.stack([[ndimage.maximum_filter(p, size=size, mode="constant", cval=-np.inf) for p in s] for s in x])
    means = np.stack([[ndimage.uniform_filter(p, size=size, mode="constant") for p in s] for s in x])
    valid = tuple(slice(k // 2, n - k // 2, s) for k, n, s in zip(size, x.shape[2:], stride))
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(max_pool(xt, size, stride).numpy(), maxima[(..., *valid)])
    np.testing.assert_allclose(avg_pool(xt, size, stride).numpy(), means[(..., *valid)], atol=1e-12)
    np.testing.assert_allclose(l2_pool(xt, size, stride).numpy(), np.sqrt(np.stack(
        [[ndimage.uniform_filter(p**2, size=size, mode="constant") for p in s] for s in x]) * np.prod(size))[(..., *valid)], atol=1e-12)


@pytest.mark.parametrize("size,stride", [(2, 2), (2, 1), (4, 3)])
def test_max_pool_matches_the_loop(size, stride):
    x = torch.randn(3, 11, 10, dtype=torch.float64)
    torch.testing.assert_close(max_pool(x[None], size, stride)[0], max_pool_loop(x, size, stride))


def test_padding_excluded_from_the_average_and_minus_infinity_for_max():
    x = torch.rand(1, 1, 4, 4) + 1.0
    averaged = avg_pool(x, 2, 2, padding=1)
    assert averaged[0, 0, 0, 0] == x[0, 0, 0, 0]  # a corner window holds one real value
    counted = avg_pool(x, 2, 2, padding=1, count_padding=True)
    torch.testing.assert_close(counted[0, 0, 0, 0], x[0, 0, 0, 0] / 4)
    negative = -x
    assert max_pool(negative, 2, 2, padding=1)[0, 0, 0, 0] == negative[0, 0, 0, 0]  # padding never wins


def test_switches_point_at_the_maxima_and_unpool_puts_them_back():
    x = torch.rand(2, 3, 8, 10) + 0.1  # positive, so the zeros unpooling adds never win
    pooled, switches = max_pool(x, 2, 2, return_switches=True)
    gathered = x.flatten(2).gather(2, switches.flatten(2)).view_as(pooled)
    torch.testing.assert_close(gathered, pooled)
    restored = max_unpool(pooled, switches, x.shape)
    assert restored.shape == x.shape
    assert (restored != 0).sum() == pooled.numel()
    torch.testing.assert_close(max_pool(restored, 2, 2), pooled)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_all_dimensions_and_torch_agreement(dims):
    x = torch.randn(2, 2, *(9,) * dims)
    torch_max = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[dims]
    torch_avg = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
    torch.testing.assert_close(max_pool(x, 3, 2, 1), torch_max(x, 3, 2, 1))
    torch.testing.assert_close(avg_pool(x, 3, 2, 1, count_padding=True), torch_avg(x, 3, 2, 1))
    assert max_pool(x, 3, 2, 1).shape[2:] == (output_size(9, 3, 2, 1),) * dims
    if dims == 2:
        torch.testing.assert_close(lp_pool(x, 3, 2, p=3.0), F.lp_pool2d(x.abs(), 3.0, 3, 2))


def test_ceil_mode_matches_torch():
    x = torch.randn(1, 1, 14, 14)
    torch.testing.assert_close(max_pool(x, 3, 2, ceil_mode=True), F.max_pool2d(x, 3, 2, ceil_mode=True))
    assert max_pool(x, 3, 2, ceil_mode=True).shape[-1] == output_size(14, 3, 2, ceil_mode=True) == 7


def test_lp_pool_gradient_is_finite_on_zero_windows():
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0
    x.requires_grad_(True)
    l2_pool(x, 2).sum().backward()
    assert torch.isfinite(x.grad).all()
    y = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: lp_pool(t, 2, 2, padding=1, p=3.0), (y,))
    torch.testing.assert_close(lp_pool(y, 2, p=float("inf")), max_pool(y.abs(), 2))


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: max_pool(torch.randn(1, 1, 4, 4), 3, padding=2), "more than half the window"),
        (lambda: max_pool(torch.randn(1, 1, 2, 2), 3), "larger than the padded input"),
        (lambda: avg_pool(torch.randn(1, 1, 4, 4), 2, stride=0), "stride"),
        (lambda: avg_pool(torch.randn(4, 4), 2), "spatial dims"),
        (lambda: lp_pool(torch.randn(1, 1, 4, 4), 2, p=0), "p must be positive"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
