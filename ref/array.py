"""Golden model of the R x C output-stationary systolic array (``hwgen.array``).

The array computes one *tile* at a time: ``Z = C0 + A @ B`` for an (R, K) block
of A, a (K, C) block of B and an (R, C) block of initial accumulators ``C0``.
Output (i, j) of the tile is the MAC chain of PE (i, j) (contract section 4),
with PE (i, j)'s xorshift32 generator. The generators are seeded once, at
reset, with ``ref.prng.seed_state(seed, i, j)`` and are never reseeded: each
tile continues from the states the previous tile left. So a tile is exactly
``ref.matmul(A_t, B_t, cfg, C0_t, state=states, return_state=True)``.

Tiling a larger product ``C0 + A @ B`` (M x K times K x N) onto the array
(:func:`array_matmul`, :class:`ArrayModel`):

* Output block ``(ti, tj)`` covers rows ``ti*R .. ti*R+R-1`` and columns
  ``tj*C .. tj*C+C-1``; output (m, n) runs on PE ``(m mod R, n mod C)``.
* Blocks are processed in **row-major order** (``ti`` outer, ``tj`` inner),
  see :func:`tile_order`.
* Each block's K is split into chunks of ``k_tile`` (default: all of K), run
  back to back in increasing k; chunk ``q+1`` starts from chunk ``q``'s results
  (the preloaded accumulators). Because the chunks of one block are
  consecutive and each PE's generator simply continues, the split of K does
  not change any result: a block is one chain of length K per PE.
* Edge blocks (M or N not a multiple of R or C) are **padded with +0 codes**
  (code 0) to a full R x C tile, as the host must do in hardware: the padded
  PEs perform real MACs on zeros and their generators step K times, which
  changes the results of the blocks that follow. Padded outputs are dropped.

Interleaved arrays (``hwgen.array.SystolicArray(..., interleave=L)``): each PE
runs L independent chains through an L-stage loop. **Chain l of PE (i, j) is PE
(i*L + l, j) of an (R*L) x C array**: its generator is seeded with
``seed_state(seed, i*L + l, j)`` and it computes tile row ``i*L + l``. So an
R x C array with L chains per PE computes exactly what ``ArrayModel(cfg, R*L, C,
seed)`` computes, tile for tile, and ``ArrayModel(cfg, R, C, seed, interleave=L)``
is that model (``rows`` is then R*L, ``pe_rows`` R). :func:`chain_of` maps a tile
row to its PE row and chain.
"""

from __future__ import annotations

import numpy as np

from . import prng
from .backend import NumpyOps
from .checks import integer_array
from .config import MacConfig, check_config
from .dispatch import matmul

__all__ = ["tile_order", "tile_plan", "ArrayModel", "array_matmul", "initial_states",
           "chain_of"]


def _codes(x, name):
    """A NumPy int64 code array (integer dtypes only: see :func:`ref.checks.integer_array`)."""
    return integer_array(NumpyOps(), x, name)


def _dims(rows, cols):
    for name, v in (("rows", rows), ("cols", cols)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"array {name} must be an integer >= 1, got {v!r}")
    return int(rows), int(cols)


def chain_of(row: int, interleave: int) -> tuple[int, int]:
    """``(pe_row, chain)`` of tile row ``row`` on an array with ``interleave`` chains per PE:
    tile row ``i*L + l`` is chain ``l`` of PE row ``i``."""
    if isinstance(interleave, (bool, np.bool_)) or not isinstance(interleave, (int, np.integer)) \
            or interleave < 1:
        raise ValueError(f"interleave must be an integer >= 1, got {interleave!r}")
    return divmod(int(row), int(interleave))


def tile_order(M: int, N: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """Output blocks ``(ti, tj)`` of an M x N result in the order the array runs them."""
    rows, cols = _dims(rows, cols)
    return [(ti, tj) for ti in range(-(-M // rows)) for tj in range(-(-N // cols))]


def initial_states(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """(rows, cols) int64 generator states of the array after reset."""
    rows, cols = _dims(rows, cols)
    return np.array(
        [[prng.seed_state_int(seed, i, j) for j in range(cols)] for i in range(rows)],
        dtype=np.int64,
    )


class ArrayModel:
    """The array's architectural state: ``cfg``, shape and the per-PE generator states.

    >>> arr = ArrayModel(cfg, rows=2, cols=2, seed=1)
    >>> Z = arr.run_tile(A_t, B_t, C0_t)   # one tile, as the hardware runs it
    >>> Y = arr.matmul(A, B, C0)           # a larger product, tiled (states continue)

    ``interleave=L``: the model of R x C PEs with L chains each, i.e. of an (R*L) x C
    array (``rows`` = R*L, ``pe_rows`` = R; see the module docstring).
    """

    def __init__(self, cfg: MacConfig, rows: int, cols: int, seed: int = 0, *,
                 backend: str = "auto", interleave: int = 1):
        self.cfg = check_config(cfg, "ArrayModel")
        chain_of(0, interleave)  # checks interleave
        self.pe_rows, self.cols = _dims(rows, cols)
        self.interleave = int(interleave)
        self.rows = self.pe_rows * self.interleave
        # The bitstream holds the seed in 32 bits (IDENT reports it): 0..2**32-1 only.
        if (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
                or not 0 <= seed < 1 << 32):
            raise ValueError(f"seed must be an integer in 0..2**32-1, got {seed!r}")
        self.seed = int(seed)
        self.backend = backend  # of ref.matmul: "reference" avoids the JIT start-up for small runs
        self.reset()

    def reset(self):
        """Back to the reset states ``seed_state(seed, i, j)`` (the hardware's ``rst``)."""
        self.state = initial_states(self.rows, self.cols, self.seed) if self.cfg.is_sr else None

    def run_tile(self, A, B, C=None):
        """One tile: A (rows, K), B (K, cols), C (rows, cols) codes (default +0); K >= 1."""
        A, B = _codes(A, "A"), _codes(B, "B")
        R, Cc = self.rows, self.cols
        if A.ndim != 2 or A.shape[0] != R or B.ndim != 2 or B.shape[1] != Cc:
            raise ValueError(
                f"a tile needs A of shape ({R}, K) and B of shape (K, {Cc}), "
                f"got {A.shape} and {B.shape}"
            )
        if A.shape[1] < 1:
            raise ValueError("a tile needs K >= 1 (the array has no empty-tile operation)")
        if self.cfg.is_sr:
            z, self.state = matmul(A, B, self.cfg, C, state=self.state, return_state=True,
                                   backend=self.backend)
        else:
            z = matmul(A, B, self.cfg, C, backend=self.backend)
        return np.asarray(z, dtype=np.int64)

    def tiles(self, A, B, C=None, k_tile: int | None = None):
        """The tile sequence of ``C + A @ B`` on this array (see :func:`tile_plan`)."""
        return tile_plan(A, B, C, self.rows, self.cols, k_tile)

    def matmul(self, A, B, C=None, *, k_tile: int | None = None):
        """``C + A @ B`` (M x K, K x N) tiled onto the array; the generator states continue."""
        A, B = _codes(A, "A"), _codes(B, "B")
        if A.ndim != 2 or B.ndim != 2:
            raise ValueError(f"A and B must be 2-D code arrays, got shapes {A.shape} and {B.shape}")
        M, N = A.shape[0], B.shape[1]
        R, Cc = self.rows, self.cols
        out = np.zeros((-(-M // R) * R, -(-N // Cc) * Cc), dtype=np.int64)
        z = None
        for ti, tj, _k0, At, Bt, Ct in self.tiles(A, B, C, k_tile):
            z = self.run_tile(At, Bt, Ct if Ct is not None else z)
            out[ti * R : ti * R + R, tj * Cc : tj * Cc + Cc] = z
        return out[:M, :N]


def array_matmul(A, B, cfg: MacConfig, rows: int, cols: int, C=None, *, seed: int = 0,
                 k_tile: int | None = None, state=None, return_state: bool = False):
    """``C + A @ B`` as an R x C array computes it from ``state`` (default: just after reset).

    ``state``: (rows, cols) generator states to continue from (SR only).
    Returns the (M, N) codes, and the final states with ``return_state``.
    """
    arr = ArrayModel(cfg, rows, cols, seed)
    if state is not None and cfg.is_sr:
        arr.state = prng.check_states(NumpyOps(), state, (arr.rows, arr.cols)).copy()
    z = arr.matmul(A, B, C, k_tile=k_tile)
    return (z, arr.state) if return_state else z


def tile_plan(A, B, C, rows: int, cols: int, k_tile: int | None = None):
    """The tile sequence of ``C + A @ B`` on an R x C array: ``(ti, tj, k0, A_t, B_t, C_t)``.

    Blocks come in :func:`tile_order`; edge blocks are padded with code 0.
    ``C_t`` is the block's initial accumulators for the first K chunk and
    None for the others (the hardware preloads the previous chunk's results
    then; a host reads them back and sends them, or keeps them in the array -
    either gives the same codes). Shared by :class:`ArrayModel` and
    :class:`boards.host.Accelerator`, so both tile identically.
    """
    A, B = _codes(A, "A"), _codes(B, "B")
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        raise ValueError(f"shape mismatch: A is {A.shape} and B is {B.shape}")
    M, K = A.shape
    N = B.shape[1]
    if K < 1:
        raise ValueError("K must be >= 1")
    if k_tile is None:
        k_tile = K
    if isinstance(k_tile, (bool, np.bool_)) or not isinstance(k_tile, (int, np.integer)) or k_tile < 1:
        raise ValueError(f"k_tile must be an integer >= 1, got {k_tile!r}")
    Mp, Np = -(-M // rows) * rows, -(-N // cols) * cols
    Ap = np.zeros((Mp, K), dtype=np.int64)
    Ap[:M] = A
    Bp = np.zeros((K, Np), dtype=np.int64)
    Bp[:, :N] = B
    Cp = np.zeros((Mp, Np), dtype=np.int64)
    if C is not None:
        C = _codes(C, "C")
        try:
            Cp[:M, :N] = np.broadcast_to(C, (M, N))
        except ValueError:
            raise ValueError(f"C has shape {C.shape}, which does not broadcast to ({M}, {N})") from None
    for ti, tj in tile_order(M, N, rows, cols):
        rs, cs = slice(ti * rows, ti * rows + rows), slice(tj * cols, tj * cols + cols)
        for k0 in range(0, K, int(k_tile)):
            ks = slice(k0, min(K, k0 + int(k_tile)))
            yield ti, tj, k0, Ap[rs, ks], Bp[ks, cs], (Cp[rs, cs] if k0 == 0 else None)
