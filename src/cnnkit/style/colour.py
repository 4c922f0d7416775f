"""Colour preservation by luminance-only transfer (Gatys, Bethge, Hertzmann & Shechtman 2016,
"Preserving color in neural artistic style transfer", §2.2).

Style is transferred on the luminance channel Y of the YIQ colour space only; the result's Y is
then combined with the content image's chrominance I, Q. Before transfer, the style's luminance
is matched to the content's mean and standard deviation (eq. 1 of that paper):
Y_s' = σ_c/σ_s · (Y_s − μ_s) + μ_c.
"""

from __future__ import annotations

import torch
from torch import Tensor

RGB_TO_YIQ = torch.tensor([
    [0.299, 0.587, 0.114],
    [0.595716, -0.274453, -0.321263],
    [0.211456, -0.522591, 0.311135],
])
"""NTSC 1953 RGB → YIQ matrix: rows give Y, I, Q."""


def rgb_to_yiq(image: Tensor) -> Tensor:
    """(…, 3, H, W) RGB → YIQ, with Y in [0, 1]."""
    return torch.einsum("ij,...jhw->...ihw", RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    """(…, 3, H, W) YIQ → RGB (inverse of :func:`rgb_to_yiq`), not clipped."""
    return torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(RGB_TO_YIQ).to(image), image)


def luminance(image: Tensor) -> Tensor:
    """The luminance Y of (…, 3, H, W), repeated in three channels so that VGG can read it."""
    y = rgb_to_yiq(image)[..., :1, :, :]
    return y.expand(*image.shape).clone()


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """Style luminance with the content's mean and standard deviation, three channels, clipped to [0, 1]."""
    y_style, y_content = luminance(style), luminance(content)
    matched = (y_style - y_style.mean()) * (y_content.std() / y_style.std().clamp_min(1e-6)) + y_content.mean()
    return matched.clamp(0, 1)


def combine_luminance(luminance_image: Tensor, colour_source: Tensor) -> Tensor:
    """RGB with the Y of ``luminance_image`` and the I, Q of ``colour_source`` (same size), clipped to [0, 1]."""
    yiq = rgb_to_yiq(colour_source)
    yiq = torch.cat([rgb_to_yiq(luminance_image)[..., :1, :, :], yiq[..., 1:, :, :]], dim=-3)
    return yiq_to_rgb(yiq).clamp(0, 1)
