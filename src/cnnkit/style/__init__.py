"""Neural style transfer (Gatys, Ecker & Bethge 2016) on cnnkit's VGG-19.

- :mod:`~cnnkit.style.losses`: ``gram_matrix``, ``content_loss``, ``style_loss``, ``total_variation``.
- :mod:`~cnnkit.style.colour`: YIQ conversion and luminance-only transfer (colour preservation).
- :mod:`~cnnkit.style.transfer`: ``StyleFeatures``, ``style_features``, ``StyleConfig``, ``stylize``.
- :mod:`~cnnkit.style.samples`: ``sample_pair``, the photo and painting used when none is given.
"""

from cnnkit.style.colour import combine_luminance, luminance, match_luminance, rgb_to_yiq, yiq_to_rgb
from cnnkit.style.losses import content_loss, gram_matrix, style_loss, total_variation
from cnnkit.style.transfer import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    WEIGHTS_HINT,
    Step,
    StyleConfig,
    StyleFeatures,
    StyleResult,
    resize_to,
    style_features,
    stylize,
)

__all__ = [
    "CONTENT_LAYER",
    "STYLE_LAYERS",
    "WEIGHTS_HINT",
    "Step",
    "StyleConfig",
    "StyleFeatures",
    "StyleResult",
    "combine_luminance",
    "content_loss",
    "gram_matrix",
    "luminance",
    "match_luminance",
    "resize_to",
    "rgb_to_yiq",
    "style_features",
    "stylize",
    "style_loss",
    "total_variation",
    "yiq_to_rgb",
]
