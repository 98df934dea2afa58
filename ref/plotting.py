"""Figures for files, without pyplot: no global backend switch, no figure registry.

Library code that writes PNGs must not call ``matplotlib.use("Agg")``: inside
a notebook that would turn inline figures off. A bare
:class:`matplotlib.figure.Figure` renders to a file with any backend.
"""

from __future__ import annotations

__all__ = ["subplots"]


def subplots(*args, figsize, **kwargs):
    """``(fig, axes)`` like ``pyplot.subplots``, for ``fig.savefig(path)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)
