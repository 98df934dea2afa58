"""Deterministic seeds and PE positions for every emulated GEMM and rounding of a run.

Seeds. A seed is a chain of the project's PE seed hash
(:func:`ref.seed_state_int`) over a tuple of small integers, e.g. ``(base
seed, layer id, step, training, stream, shard)``. Equal tuples give equal
seeds on every machine; different tuples give unrelated seeds.

A layer keeps ``(base seed, layer id, step)`` in its state dict (the
``srmac_rng`` buffer, :class:`sim.layers.SeededModule`): ``step`` counts its
training calls. Every call derives its seeds from that triple, so

* training is reproducible from the base seed, and resuming from a checkpoint
  continues the same random streams;
* evaluation does not advance ``step``: the same checkpoint and input give the
  same evaluation bits, however often it is evaluated.

Positions (distributed data parallel). A random word belongs to a *position*
(a PE of the array, an element of a tensor), not to a process. Under DDP each
rank holds the samples ``n * stride + offset`` of the global batch
(:func:`sample_layout`: ``stride`` = world size, ``offset`` = rank, the split
of ``DistributedSampler`` and of ``srmac train``), so a layer maps its local
rows to their global rows before seeding: a row of the forward GEMM, of the
input-gradient GEMM or of an SR-rounded activation gets the same random bits
on any number of ranks. A chain that runs *over* the batch (the weight
gradient, the bias gradient) is split between ranks and summed by DDP; each
rank's part is its own chain, seeded with the rank as ``shard``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ref import prng
from ref.backend import ops_for
from ref.prng import seed_state_int

__all__ = ["derive_seed", "Stream", "sample_layout", "sample_positions", "Positions",
           "pe_states", "sr_words"]


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
    Q_OUT = 10  # a Quantizer module, forward
    Q_OUT_BWD = 11  # a Quantizer module, backward (the gradient)
    OPT_MOMENTUM = 16
    OPT_WEIGHT = 17
    OPT_STATE = 18


def derive_seed(*parts: int) -> int:
    """A 32-bit non-zero seed from integers (each reduced mod 2**32).

    Trailing zeros in an odd position do not change the seed:
    ``derive_seed(a, b, c) == derive_seed(a, b, c, 0)``.
    """
    h = 0x5EED
    for k in range(0, len(parts), 2):
        i = int(parts[k])
        j = int(parts[k + 1]) if k + 1 < len(parts) else 0
        h = seed_state_int(h, i, j)
    return h


_LAYOUT: tuple[int, int] | None = None


def sample_layout() -> tuple[int, int]:
    """``(stride, offset)``: local sample ``n`` is sample ``n * stride + offset`` of the batch.

    Inside :func:`sample_positions`, its arguments; else ``(world size, rank)``
    under ``torch.distributed``, ``(1, 0)`` without it.
    """
    if _LAYOUT is not None:
        return _LAYOUT
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


@contextlib.contextmanager
def sample_positions(stride: int = 1, offset: int = 0) -> Iterator[None]:
    """Declare how this process's samples sit in the global batch (see the module doc).

    For a sharding other than ``DistributedSampler``'s, e.g. contiguous
    shards of ``b`` samples: ``with sample_positions(1, rank * b): ...``.
    """
    global _LAYOUT
    if stride < 1 or offset < 0:
        raise ValueError(f"sample_positions needs stride >= 1 and offset >= 0, got {stride}, {offset}")
    old, _LAYOUT = _LAYOUT, (int(stride), int(offset))
    try:
        yield
    finally:
        _LAYOUT = old


class Positions:
    """Global positions of local rows and elements for a ``(stride, offset)`` layout.

    A tensor "with a sample dimension" has the local samples along dim 0;
    everything after it belongs to one sample. ``None`` means "the local
    position is the global one" (one process), so callers take the cheap path.
    """

    def __init__(self, layout):
        self.stride, self.offset = (int(v) for v in layout)

    @property
    def trivial(self) -> bool:
        return (self.stride, self.offset) == (1, 0)

    @property
    def shard(self) -> int:
        """The index of this process's part of a chain over the batch (0 alone)."""
        return self.offset

    def _samples(self, n: int, device):
        import torch

        return torch.arange(n, dtype=torch.int64, device=device) * self.stride + self.offset

    def rows(self, n_samples: int, per_sample: int, device):
        """Global row ids of ``n_samples * per_sample`` rows, sample-major; None if trivial."""
        if self.trivial:
            return None
        import torch

        local = torch.arange(per_sample, dtype=torch.int64, device=device)
        return (self._samples(n_samples, device)[:, None] * per_sample + local).reshape(-1)

    def elements(self, shape, device):
        """Global flat positions of a tensor with a sample dimension; None if trivial."""
        if self.trivial or len(shape) == 0:
            return None
        n = int(shape[0])
        per = 1
        for d in shape[1:]:
            per *= int(d)
        return self.rows(n, per, device).reshape(tuple(shape))


def pe_states(seed: int, rows, cols):
    """Initial generator states of the PEs ``(rows[i], cols[j])`` (int64, broadcast).

    ``ref.matmul(..., seed=s)`` starts PE ``(i, j)`` from ``seed_state(s, i, j)``;
    these are the same states at other row / column numbers.
    """
    return prng.seed_state(ops_for(rows, cols), seed, rows, cols)


def sr_words(seed: int, positions, nbits: int):
    """Random words of ``ref.encode(..., seed=s)`` for elements at ``positions``.

    ``ref.encode`` gives element ``n`` (row-major) the generator of PE
    ``(n, 0)`` stepped once; this returns those words for arbitrary ``n``.
    """
    state = prng.step(prng.seed_state(ops_for(positions), seed, positions, 0))
    return state & ((1 << nbits) - 1)
