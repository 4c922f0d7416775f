"""Matplotlib for the tour's figures, without a display."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (PNG files, no window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
