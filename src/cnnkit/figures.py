"""Matplotlib for cnnkit's figures, without a display: every PNG cnnkit draws goes through here."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (PNG files, no window), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
