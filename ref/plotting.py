"""Figures for files, without pyplot: no global backend switch, no figure registry.

Library code that writes PNGs must not call ``matplotlib.use("Agg")``: inside
a notebook that would turn inline figures off. A bare
:class:`matplotlib.figure.Figure` renders to a file with any backend.
"""

from __future__ import annotations

__all__ = ["subplots", "save_figure"]


def subplots(*args, figsize, **kwargs):
    """``(fig, axes)`` like ``pyplot.subplots``, for ``fig.savefig(path)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def save_figure(fig, path, **savefig_kwargs):
    """Write ``fig`` to ``path`` atomically (:func:`ref.outputs.atomic_write`); returns the Path.

    The format comes from the file name's suffix (``.png``, ``.pdf``, ``.svg``).
    """
    from pathlib import Path

    from .outputs import atomic_write

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=fmt, **savefig_kwargs)
    return path
