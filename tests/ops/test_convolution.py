"""cnnkit.ops convolution and cross-correlation against scipy, torch and the lecture's loops."""

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from cnnkit.ops import convolution, cross_correlation, output_size
from cnnkit.ops.reference import convolution_sum, cross_correlation_sum

RNG = np.random.default_rng(0)


def scipy_layer(x, kernel, mode, flip):
    """Σ over input channels of scipy.signal.convolve/correlate, for every (n, c_out)."""
    operation = scipy.signal.convolve if flip else scipy.signal.correlate
    return np.array(
        [[sum(operation(x[n, c], kernel[o, c], mode=mode) for c in range(x.shape[1])) for o in range(kernel.shape[0])]
         for n in range(x.shape[0])]
    )


def random_case(dims, kernel_sizes):
    spatial = {1: (13,), 2: (9, 11), 3: (6, 7, 5)}[dims]
    x = RNG.standard_normal((2, 3, *spatial))
    kernel = RNG.standard_normal((4, 3, *kernel_sizes))
    return x, kernel


SCIPY_CASES = [
    (flip, mode, kernel_sizes)
    for flip in (True, False)
    for mode in ("full", "valid", "same")
    for kernel_sizes in [(3,), (4,), (3, 3), (2, 5), (4, 2), (3, 3, 3), (2, 3, 4)]
    # scipy centres an even kernel's "same" correlation one sample away from PyTorch's convention,
    # which cross_correlation follows: those cases are checked against torch below.
    if flip or mode != "same" or all(k % 2 for k in kernel_sizes)
]


@pytest.mark.parametrize("flip,mode,kernel_sizes", SCIPY_CASES)
def test_matches_scipy(flip, mode, kernel_sizes):
    dims = len(kernel_sizes)
    x, kernel = random_case(dims, kernel_sizes)
    operation = convolution if flip else cross_correlation
    ours = operation(torch.from_numpy(x), torch.from_numpy(kernel), padding=mode).numpy()
    np.testing.assert_allclose(ours, scipy_layer(x, kernel, mode, flip), atol=1e-10)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("kernel_size", [(2, 2), (4, 3), (2, 4)])
def test_same_even_kernel_matches_torch(kernel_size):
    x, kernel = (torch.from_numpy(a) for a in random_case(2, kernel_size))
    expected = F.conv2d(x, kernel, padding="same")
    torch.testing.assert_close(cross_correlation(x, kernel, padding="same"), expected)


def test_convolution_is_cross_correlation_with_flipped_kernel():
    x, kernel = (torch.from_numpy(a) for a in random_case(2, (3, 4)))
    torch.testing.assert_close(convolution(x, kernel, padding=2), cross_correlation(x, kernel.flip(2, 3), padding=2))
    assert not torch.allclose(convolution(x, kernel), cross_correlation(x, kernel))


@pytest.mark.parametrize("stride,dilation", [((2, 3), 1), (2, (2, 1)), (1, 2), ((3, 1), (1, 3))])
def test_stride_and_dilation_match_scipy(stride, dilation):
    x, kernel = random_case(2, (3, 2))
    x = RNG.standard_normal((1, 2, 17, 15))
    kernel = kernel[:, :2]
    dilation_pair = (dilation,) * 2 if isinstance(dilation, int) else dilation
    stride_pair = (stride,) * 2 if isinstance(stride, int) else stride
    dilated = np.zeros((*kernel.shape[:2], *(d * (k - 1) + 1 for d, k in zip(dilation_pair, kernel.shape[2:]))))
    dilated[:, :, :: dilation_pair[0], :: dilation_pair[1]] = kernel
    expected = scipy_layer(x, dilated, "valid", flip=False)[:, :, :: stride_pair[0], :: stride_pair[1]]
    ours = cross_correlation(torch.from_numpy(x), torch.from_numpy(kernel), stride=stride, dilation=dilation)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10)


NUMPY_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.mark.parametrize("padding_mode", list(NUMPY_MODES))
@pytest.mark.parametrize("padding", [1, (2, 1), ((0, 3), (2, 1)), "same", "full"])
def test_padding_modes_match_numpy_pad(padding_mode, padding):
    x = RNG.standard_normal((2, 3, 8, 9))
    kernel = RNG.standard_normal((2, 3, 3, 3))
    pairs = {1: ((1, 1), (1, 1)), (2, 1): ((2, 2), (1, 1)), "same": ((1, 1), (1, 1)), "full": ((2, 2), (2, 2))}.get(
        padding, padding
    )
    padded = np.pad(x, ((0, 0), (0, 0), *pairs), mode=NUMPY_MODES[padding_mode])
    expected = scipy_layer(padded, kernel, "valid", flip=False)
    ours = cross_correlation(torch.from_numpy(x), torch.from_numpy(kernel), padding=padding, padding_mode=padding_mode)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("dims", [1, 3])
@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_padding_modes_in_1d_and_3d(dims, padding_mode):
    x, kernel = random_case(dims, (3,) * dims)
    pad_width = ((0, 0), (0, 0), *((1, 2),) * dims)
    expected = scipy_layer(np.pad(x, pad_width, mode=NUMPY_MODES[padding_mode]), kernel, "valid", flip=True)
    ours = convolution(torch.from_numpy(x), torch.from_numpy(kernel), padding=((1, 2),) * dims, padding_mode=padding_mode)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10)


def test_groups_and_bias_match_torch():
    x = torch.randn(2, 6, 10, 10, dtype=torch.float64)
    kernel = torch.randn(9, 2, 3, 3, dtype=torch.float64)
    bias = torch.randn(9, dtype=torch.float64)
    ours = cross_correlation(x, kernel, bias, stride=2, padding=1, groups=3)
    torch.testing.assert_close(ours, F.conv2d(x, kernel, bias, stride=2, padding=1, groups=3))
    # group g of the output sees only input channels of group g
    x_changed = x.clone()
    x_changed[:, 4:] += 1
    changed = cross_correlation(x_changed, kernel, bias, stride=2, padding=1, groups=3)
    torch.testing.assert_close(changed[:, :6], ours[:, :6])
    assert not torch.allclose(changed[:, 6:], ours[:, 6:])


def test_lecture_loops_agree():
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    kernel = torch.randn(3, 2, 3, 2, dtype=torch.float64)
    torch.testing.assert_close(
        cross_correlation(x[None], kernel, stride=2, padding=1)[0], cross_correlation_sum(x, kernel, stride=2, padding=1)
    )
    image, small = torch.randn(5, 6, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(convolution(image[None, None], small[None, None], padding="full")[0, 0], convolution_sum(image, small))


@pytest.mark.parametrize("operation", [convolution, cross_correlation])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_gradients_are_exact(operation, padding_mode):
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(2, 1, 3, 2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, k, b: operation(a, k, b, stride=(2, 1), padding="same", dilation=(1, 2), groups=2, padding_mode=padding_mode),
        (x, kernel, bias),
    )


def test_output_sizes_follow_the_formula():
    x = torch.randn(1, 1, 32, 227)
    assert cross_correlation(x, torch.randn(6, 1, 5, 11), stride=(1, 4)).shape[2:] == (28, 55)
    assert output_size(227, 11, 4) == 55
    assert output_size(32, 5) == 28
    assert output_size(7, 3, 2, "same") == 4


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: cross_correlation(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 5, 5)), "larger than the padded input"),
        (lambda: cross_correlation(torch.randn(1, 4, 8, 8), torch.randn(3, 2, 3, 3), groups=2), "groups=2 must divide"),
        (lambda: cross_correlation(torch.randn(1, 4, 8, 8), torch.randn(2, 3, 3, 3)), "input channels"),
        (lambda: cross_correlation(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3), stride=0), "stride"),
        (lambda: cross_correlation(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3), stride=(1, -1)), "stride"),
        (lambda: cross_correlation(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3), dilation=0), "dilation"),
        (lambda: cross_correlation(torch.randn(8, 8), torch.randn(1, 1, 3, 3)), "input must have shape"),
        (lambda: cross_correlation(torch.randn(1, 1, 8, 8, 8, 8), torch.randn(1, 1, 3, 3, 3, 3)), "1-3 spatial dims"),
        (lambda: cross_correlation(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3), padding="half"), "padding"),
        (lambda: cross_correlation(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3), padding=-1), "padding"),
        (lambda: cross_correlation(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3), padding_mode="mirror"), "padding_mode"),
        (lambda: cross_correlation(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 3, 3), padding=3, padding_mode="reflect"), "reflect"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x, kernel = torch.randn(2, 3, 16, 16), torch.randn(4, 3, 3, 3)
    for operation in (convolution, cross_correlation):
        cpu = operation(x, kernel, padding="same", padding_mode="reflect")
        gpu = operation(x.cuda(), kernel.cuda(), padding="same", padding_mode="reflect")
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
