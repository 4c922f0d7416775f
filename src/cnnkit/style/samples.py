"""The photo and painting that ``cnnkit stylize`` and the tour use when given none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnkit.data import read_image, sample_image

SHARED_STYLE_IMAGES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "style-images"
"""``../shared/data/style-images`` beside a source checkout: the classic Tübingen photo and paintings."""


def sample_pair() -> tuple[torch.Tensor, str, torch.Tensor, str]:
    """(content, its name, style, its name), RGB (3, H, W) in [0, 1]: Tübingen and Starry Night from
    ../shared/data when present, else scikit-image's astronaut and a stained-tissue texture."""
    content_path, style_path = SHARED_STYLE_IMAGES / "tubingen.jpg", SHARED_STYLE_IMAGES / "starry_night.jpg"
    if content_path.is_file() and style_path.is_file():
        return read_image(content_path, gray=False), str(content_path), read_image(style_path, gray=False), str(style_path)
    import skimage.data

    texture = torch.from_numpy(skimage.data.immunohistochemistry().astype(np.float32) / 255).permute(2, 0, 1).contiguous()
    return sample_image("astronaut"), "sample:astronaut", texture, "sample:immunohistochemistry"
