"""Deterministic 32-bit seeds for every emulated GEMM and rounding in a training run.

A seed is a chain of the project's PE seed hash (:func:`ref.seed_state_int`)
over a tuple of small integers, e.g. ``(base_seed, layer_id, call, stream,
rank)``. Equal tuples give equal seeds on every machine, so a run is
reproducible from its base seed, and different tuples give unrelated seeds.
"""

from __future__ import annotations

from ref.prng import seed_state_int

__all__ = ["derive_seed", "Stream"]


class Stream:
    """Stream numbers: which random consumer of a layer call a seed feeds."""

    FWD_GEMM = 0
    BWD_INPUT_GEMM = 1
    BWD_WEIGHT_GEMM = 2
    BIAS_GEMM = 3
    Q_ACT = 4
    Q_WEIGHT = 5
    Q_GRAD = 6
    Q_ACT_BWD = 7
    Q_WEIGHT_BWD = 8
    Q_GRAD_BWD = 9
    OPT_MOMENTUM = 16
    OPT_WEIGHT = 17


def derive_seed(*parts: int) -> int:
    """A 32-bit non-zero seed from integers (each reduced mod 2**32)."""
    h = 0x5EED
    for k in range(0, len(parts), 2):
        i = int(parts[k])
        j = int(parts[k + 1]) if k + 1 < len(parts) else 0
        h = seed_state_int(h, i, j)
    return h
