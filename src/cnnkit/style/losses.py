"""The losses of neural style transfer (Gatys, Ecker & Bethge 2016, "Image style transfer using
convolutional neural networks", §2).

With F_l the (C_l, M_l) matrix of layer l's responses (C_l channels, M_l = H_l·W_l positions)
to the generated image, P_l the same for the content image and A_l the style image's Gram
matrix:

- content:  L_content = mean over (c, m) of (F_l − P_l)²                            (eq. 1)
- Gram:     G_l = F_l F_lᵀ / (C_l M_l)                                              (eq. 3)
- style:    L_style = Σ_l w_l · mean over (i, j) of (G_l − A_l)²                    (eq. 4-5)
- smoothing: L_tv = mean (x(i+1, j) − x(i, j))² + mean (x(i, j+1) − x(i, j))²

The paper's E_l = Σ (Ĝ − Â)² / (4 C² M²) on unnormalised Grams Ĝ = F Fᵀ differs from this mean
only by a constant per layer; dividing by C·M makes Grams of images of different sizes
comparable, which lets style and content images differ in size and aspect ratio and lets
coarse-to-fine optimisation reuse one weighting at every scale. The scale is the PyTorch
tutorial's, so its weights (style 1e6, content 1) carry over.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """G = F Fᵀ / (C·H·W) for each image: (N, C, H, W) → (N, C, C).

    G[n, i, j] is the mean over positions of the product of channels i and j, divided by C:
    second-order statistics of the responses, blind to where in the image they occur.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (N, C, H, W), got {tuple(features.shape)}")
    n, c, h, w = features.shape
    matrix = features.reshape(n, c, h * w)  # (N, C, M)
    return torch.bmm(matrix, matrix.transpose(1, 2)) / (c * h * w)  # (N, C, C)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of the responses: mean (F − P)²."""
    return F.mse_loss(features, target)


def style_loss(grams: Mapping[str, Tensor], targets: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Σ_l w_l · mean (G_l − A_l)² over the layers named in ``weights``."""
    return sum(weight * F.mse_loss(grams[name], targets[name]) for name, weight in weights.items())


def total_variation(image: Tensor) -> Tensor:
    """Squared total variation of (N, C, H, W): mean squared difference of vertical plus horizontal neighbours."""
    vertical = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    return vertical + horizontal
