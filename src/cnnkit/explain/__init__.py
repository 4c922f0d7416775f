"""Seeing what convolutions and networks compute.

- :mod:`~cnnkit.explain.layers`: ``resolve_layer``, ``conv_weights``, ``feature_maps``.
- :mod:`~cnnkit.explain.deconvnet`: Zeiler & Fergus's deconvnet, ``project_chain`` (the paper's
  procedure on a chain of layers) and ``deconvnet`` (any model with ``nn.ReLU`` modules).
- :mod:`~cnnkit.explain.patches`: ``top_patches``, the dataset patches that most activate a channel.
- :mod:`~cnnkit.explain.attribution`: ``occlusion_map``, ``grad_cam``, ``saliency_map``.
- :mod:`~cnnkit.explain.figures`: ``viewable``, ``filtering_figure`` and a PNG for each of the above.
"""

from cnnkit.explain.attribution import ClassMap, OcclusionMap, grad_cam, occlusion_map, saliency_map
from cnnkit.explain.deconvnet import Projection, deconvnet, project_chain, strongest_activations, transposed_filtering
from cnnkit.explain.figures import (
    deconvnet_figure,
    feature_maps_figure,
    filtering_figure,
    filters_figure,
    heatmap_figure,
    image_grid,
    top_patches_figure,
    viewable,
)
from cnnkit.explain.layers import conv_layer_names, conv_weights, feature_maps, resolve_layer
from cnnkit.explain.patches import TopPatch, support_box, top_patches

__all__ = [
    "ClassMap",
    "OcclusionMap",
    "Projection",
    "TopPatch",
    "conv_layer_names",
    "conv_weights",
    "deconvnet",
    "deconvnet_figure",
    "feature_maps",
    "feature_maps_figure",
    "filtering_figure",
    "filters_figure",
    "grad_cam",
    "heatmap_figure",
    "image_grid",
    "occlusion_map",
    "project_chain",
    "resolve_layer",
    "saliency_map",
    "strongest_activations",
    "support_box",
    "top_patches",
    "top_patches_figure",
    "transposed_filtering",
    "viewable",
]
