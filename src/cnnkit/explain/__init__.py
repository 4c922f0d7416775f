"""Seeing what convolutions and networks compute: figures of kernels and feature maps."""

from cnnkit.explain.figures import filtering_figure, viewable

__all__ = ["filtering_figure", "viewable"]
