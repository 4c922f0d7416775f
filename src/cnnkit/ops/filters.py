"""Classic image filters as named 2-D kernels.

Every kernel is meant for :func:`cnnkit.ops.cross_correlation`, the sliding dot product that
convolution layers compute, so that ``sobel-x`` responds positively where brightness grows to
the right and ``sobel-y`` where it grows downwards. (Under the flipped-kernel
:func:`cnnkit.ops.convolution` the derivative kernels change sign; the symmetric ones do not.)
"""

from __future__ import annotations

import math

import torch

from cnnkit.ops.convolution import convolution, cross_correlation


def gaussian(sigma: float = 1.0, size: int | None = None) -> torch.Tensor:
    """Gaussian blur: k(u, v) ∝ exp(−(u² + v²) / 2σ²), normalised to sum 1.

    The default size 2⌈3σ⌉ + 1 keeps 99.7 % of the mass along each axis.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd number, got {size}")
    u = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(u**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).float()


def box_blur(size: int = 3) -> torch.Tensor:
    """Box blur: the mean of a size × size neighbourhood, k = 1/size² everywhere."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    return torch.full((size, size), 1.0 / size**2)


def identity(size: int = 3) -> torch.Tensor:
    """The identity: a single 1 at the centre, so the output equals the input."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd number, got {size}")
    k = torch.zeros(size, size)
    k[size // 2, size // 2] = 1.0
    return k


def unsharp_mask(sigma: float = 1.0, amount: float = 1.0) -> torch.Tensor:
    """Unsharp masking: x + amount · (x − blur(x)), as one kernel (1 + amount)·δ − amount·G_σ."""
    blur = gaussian(sigma)
    return (1 + amount) * identity(blur.shape[0]) - amount * blur


def _derivative(smoothing: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y derivative kernels: central difference [−1, 0, 1] across, smoothing along."""
    difference = torch.tensor([-1.0, 0.0, 1.0])
    smooth = torch.tensor(smoothing)
    return torch.outer(smooth, difference), torch.outer(difference, smooth)


SOBEL_X, SOBEL_Y = _derivative([1.0, 2.0, 1.0])
PREWITT_X, PREWITT_Y = _derivative([1.0, 1.0, 1.0])
SCHARR_X, SCHARR_Y = _derivative([3.0, 10.0, 3.0])
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
SHARPEN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])
EMBOSS = torch.tensor([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])

KERNELS = {
    "identity": identity,
    "box": box_blur,
    "gaussian": gaussian,
    "sharpen": lambda: SHARPEN.clone(),
    "unsharp": unsharp_mask,
    "sobel-x": lambda: SOBEL_X.clone(),
    "sobel-y": lambda: SOBEL_Y.clone(),
    "prewitt-x": lambda: PREWITT_X.clone(),
    "prewitt-y": lambda: PREWITT_Y.clone(),
    "scharr-x": lambda: SCHARR_X.clone(),
    "scharr-y": lambda: SCHARR_Y.clone(),
    "laplacian": lambda: LAPLACIAN.clone(),
    "emboss": lambda: EMBOSS.clone(),
}
"""Named kernels: ``KERNELS[name](**options)`` returns a ``(K, K)`` float tensor."""

EDGE_OPERATORS = ("sobel", "prewitt", "scharr")


def kernel(name: str, **options) -> torch.Tensor:
    """The named kernel, e.g. ``kernel("gaussian", sigma=2.0)``; see :data:`KERNELS`."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)}")
    return KERNELS[name](**options)


def parse_kernel(text: str, **options) -> torch.Tensor:
    """A kernel from a name (``"sobel-x"``, with its ``options``) or from numbers, rows split by
    ``;``: ``"1,0,-1;2,0,-2;1,0,-1"``."""
    if text in KERNELS:
        return kernel(text, **options)
    if options:
        raise ValueError(f"options {', '.join(options)} apply only to named kernels, not to {text!r}")
    try:
        rows = [[float(value) for value in row.split(",")] for row in text.strip().split(";")]
    except ValueError:
        raise ValueError(
            f"kernel {text!r} is neither a name ({', '.join(KERNELS)}) nor numbers like '1,0,-1;2,0,-2;1,0,-1'"
        ) from None
    if len({len(row) for row in rows}) != 1:
        raise ValueError(f"kernel {text!r}: every row needs the same number of values")
    return torch.tensor(rows)


def filter_image(
    image: torch.Tensor,
    kernel2d: torch.Tensor,
    stride: int | tuple[int, int] = 1,
    padding="same",
    dilation: int | tuple[int, int] = 1,
    padding_mode: str = "replicate",
    flip: bool = False,
) -> torch.Tensor:
    """Apply one 2-D kernel to every channel of an image separately (a depthwise layer).

    ``image`` is ``(C, H, W)`` or ``(N, C, H, W)``; the result has the same layout. ``flip=True``
    computes the lecture's convolution instead of the cross-correlation.
    """
    batched = image.dim() == 4
    x = image if batched else image[None]
    if x.dim() != 4 or kernel2d.dim() != 2:
        raise ValueError(f"expected an image (C, H, W) and a kernel (K_h, K_w), got {tuple(image.shape)} and {tuple(kernel2d.shape)}")
    channels = x.shape[1]
    weights = kernel2d.to(x).expand(channels, 1, *kernel2d.shape)  # (C, 1, K_h, K_w): one copy per channel
    operation = convolution if flip else cross_correlation
    y = operation(x, weights, None, stride, padding, dilation, channels, padding_mode)
    return y if batched else y[0]


def edge_magnitude(image: torch.Tensor, operator: str = "sobel", padding_mode: str = "replicate") -> torch.Tensor:
    """Gradient magnitude sqrt(g_x² + g_y²) of every channel, with Sobel, Prewitt or Scharr.

    ``image`` is ``(C, H, W)`` or ``(N, C, H, W)``; the result has the same shape ("same" padding).
    """
    if operator not in EDGE_OPERATORS:
        raise ValueError(f"operator must be one of {', '.join(EDGE_OPERATORS)}, got {operator!r}")
    gx = filter_image(image, kernel(f"{operator}-x"), padding_mode=padding_mode)
    gy = filter_image(image, kernel(f"{operator}-y"), padding_mode=padding_mode)
    return torch.sqrt(gx**2 + gy**2)
