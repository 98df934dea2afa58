"""Fast emulated GEMM: the same codes as :func:`ref.chain.matmul_reference`, compiled.

:func:`matmul` takes the reference's arguments (checked by the same
:func:`ref.chain.prepare`); a compiled prologue (:mod:`ref.fast.prologue`)
decodes each operand matrix from the format's decode table (the reference's
own :func:`ref.codec.unpack` of every code) and seeds the PEs' generators
with :mod:`ref.prng`'s rule; then numba kernels run the MAC chains over tiles
of one output row by ``JB`` columns, the tile's accumulators resident while
``k`` advances, random words generated in the kernel from each PE's
xorshift32 state. Both steps run on all cores: the calling thread and a pool
of worker threads kept between calls (:func:`_spread`).

Two CPU kernels give the same codes:

* :mod:`ref.fast.narrow` (int32 lanes, accumulators kept decoded, one loop
  per rounding mode) for configurations whose window fits 31 bits
  (:func:`uses_narrow`: e.g. E5M2 / E4M3 into E6M5 / FP16 with r up to
  21 / 16). It handles finite chains below the accumulator's top binade: a
  tile that meets a NaN or an infinity, or reaches the top binade (where it
  may overflow), is handed to
* :mod:`ref.fast.kernel` (int64 lanes, every rule), which also runs every
  other configuration.

Both kernels compile the MAC bodies of :mod:`ref.fast.macbody`, which the
device kernels (:mod:`ref.fast.device`, Triton) compile too. numba is imported
on first use, so ``import ref`` stays light. Which path runs a call (the
reference, this one, or the device) is decided in :mod:`ref.dispatch`. See
docs/performance.md for the measurements behind these choices.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import prng
from ..backend import is_torch
from ..chain import matmul_reference, prepare
from ..config import MacConfig
from . import layout as L
from .plan import decode_operand, decode_table, fits_int32, fits_narrow, params

__all__ = ["matmul", "available", "numba_available", "params", "decode_operand", "threads", "JB",
           "THREADS", "NARROW", "uses_narrow", "LAST_RUN"]

#: Columns per tile: the accumulators of a tile stay in L1 while k advances
#: (256 measured ~8 % faster than 128 in the int32 kernel: fewer calls per MAC).
JB = 256


def numba_available() -> bool:
    """True when numba can be imported (the CPU kernels need it)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def available(*arrays) -> bool:
    """True when :func:`matmul` can run these arrays: NumPy or CPU torch, and numba installed."""
    if any(a is not None and is_torch(a) and a.device.type != "cpu" for a in arrays):
        return False
    return numba_available()


def matmul(A, B, cfg: MacConfig, C=None, *, seed: int = 0, rand=None, state=None,
           return_state: bool = False):
    """:func:`ref.chain.matmul_reference` on the CPU, compiled: same arguments, same codes.

    NumPy arrays or CPU torch tensors (results of the same kind); inputs whose
    decoded fields do not fit int32 (an extreme custom bias) run the reference.
    """
    if any(a is not None and is_torch(a) and a.device.type != "cpu" for a in (A, B, C, rand, state)):
        raise ValueError("ref.fast.matmul runs on the CPU; CUDA tensors go to ref.fast.device "
                         "(ref.matmul picks the path)")
    if not fits_int32(cfg.in_fmt):
        return matmul_reference(A, B, cfg, C, seed=seed, rand=rand, state=state,
                                return_state=return_state)
    ops, A, B, z, rand, gen = prepare(A, B, cfg, C, seed=seed, rand=rand, state=state,
                                      seed_states=False)
    # SR from a seed: the kernels seed the states (ref.fast.prologue), with the rule of ref.prng
    seeds = prng.seed_words(seed) if cfg.is_sr and rand is None and gen is None else None
    to_np = (lambda x: x.cpu().numpy()) if ops.name == "torch" else np.asarray
    A, B, z = to_np(A), to_np(B), to_np(z)
    rand = None if rand is None else to_np(rand)
    gen = None if gen is None else to_np(gen)
    M, N = z.shape
    LAST_RUN["transposed"] = transpose = N < JB and M > N
    if transpose:
        # Few columns, many rows (convolutions: N = output channels): a tile is one row of
        # at most N lanes, too few for the vector units. C^T = B^T A^T has the same chains
        # (the same products in the same k order), with each PE's generator and words
        # carried to the transposed position: the same codes, with long rows.
        Z, G = _run_cpu(B.T, A.T, cfg, z.T, None if rand is None else rand.transpose(1, 0, 2),
                        None if gen is None else gen.T, seeds, swap=True)
        Z = np.ascontiguousarray(Z.T)
        G = None if G is None else np.ascontiguousarray(G.T)
    else:
        Z, G = _run_cpu(A, B, cfg, z, rand, gen, seeds, swap=False)
    if ops.name == "torch":
        torch = ops.torch
        Z = torch.from_numpy(Z)
        G = None if G is None else torch.from_numpy(G)
    if return_state:
        return Z, G
    return Z


#: Worker threads of the CPU kernel; None: every core this process may use.
THREADS: int | None = None


def threads() -> int:
    """Worker threads for the CPU kernel: :data:`THREADS`, else the usable cores."""
    if THREADS:
        return THREADS
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


#: Below this many MACs the calling thread does the whole product (handing parts to the
#: worker threads costs more).
MIN_PARALLEL_MACS = 1 << 16


#: Set False to force the int64 kernel everywhere (tests compare both paths).
NARROW = True


def uses_narrow(cfg: MacConfig) -> bool:
    """True when :func:`matmul` runs ``cfg`` in the int32 kernel (:mod:`ref.fast.narrow`)."""
    return NARROW and fits_narrow(cfg)


#: Tiles of the last CPU call per kernel, for tests and benchmarks (not thread-safe):
#: ``narrow_tiles`` finished in int32 lanes, ``wide_tiles`` ran the int64 kernel;
#: ``transposed``: the kernels ran C^T = B^T A^T (few columns, many rows).
LAST_RUN = {"narrow_tiles": 0, "wide_tiles": 0, "transposed": False}


def _run_cpu(A, B, cfg, z, rand, gen, seeds, swap):
    """The chains of ``z + A @ B`` in the compiled kernels: ``(Z, G)``.

    ``gen``: the initial generator states, or None; ``seeds``: ``(base, key)``
    (:func:`ref.prng.seed_words`) when the kernels seed the states themselves,
    for PE ``(i, j)``, or ``(j, i)`` when ``swap`` (the transposed product).
    """
    # numba compiles (or loads) the kernels here, on first use: not at ``import ref``
    from .kernel import gemm_tiles
    from .prologue import prologue

    M, K = A.shape
    N = B.shape[1]
    jb = max(1, min(JB, N))
    nJ = -(-N // jb)
    fmt = cfg.in_fmt
    macs = M * N * K
    nthreads = threads() if macs >= MIN_PARALLEL_MACS else 1
    if fmt.width <= 16:  # the prologue decodes, from the format's table
        table = decode_table(fmt)
        Adec = np.empty((M, K, 4), np.int32)
        Bt = np.empty((nJ, K, 4, jb), np.int32)
        A, B = _c_or_f(A), _c_or_f(B)
    else:
        table = np.zeros((0, 4), np.int32)
        Adec = decode_operand(A, fmt)  # (M, K, 4)
        Bp = np.zeros((K, nJ * jb), np.int64)  # B padded to whole column tiles with +0 codes
        Bp[:, :N] = B
        # (nJ, K, 4, jb): a tile's row k of B, decoded, is one contiguous block
        Bt = np.ascontiguousarray(decode_operand(Bp.reshape(K, nJ, jb).transpose(1, 0, 2),
                                                 fmt).transpose(0, 1, 3, 2))
        A = B = np.zeros((0, 0), np.int64)
    Z = np.array(z, dtype=np.int64, order="C", copy=True)
    if gen is not None:
        G = np.array(gen, np.int64, order="C", copy=True)
    else:
        G = np.empty((M, N) if seeds is not None else (0, 0), np.int64)
    R = np.zeros((0, 0, 0), np.int64) if rand is None else np.ascontiguousarray(rand, np.int64)
    rowbad = np.empty(M, np.bool_)
    badk = np.empty((nJ, K), np.bool_)
    base, key = seeds or (0, 0)
    Gseed = G if seeds is not None else np.zeros((0, 0), np.int64)
    parts = nthreads if nthreads > 1 else 1
    _spread(lambda part: prologue(A, B, table, Adec, Bt, rowbad, badk, Gseed, base, key, swap,
                                  part, parts), parts, nthreads)
    G = G if (gen is not None or seeds is not None) else None
    P = params(cfg)
    ntiles = M * nJ
    LAST_RUN.update(narrow_tiles=0, wide_tiles=0)
    if not (ntiles and K):
        return Z, G
    Gk = np.zeros((0, 0), np.int64) if G is None else G
    tiles = np.arange(ntiles, dtype=np.int64)
    if uses_narrow(cfg):
        from .narrow import gemm_tiles32, variant_tag

        colbad = badk.any(axis=1)
        redo = np.zeros(ntiles, np.int8)
        source = 1 if G is not None else (2 if rand is not None else 0)
        tag = variant_tag(int(P[L.P_MODE]), source)
        _tiles(gemm_tiles32, (Adec, Bt, Z, Gk, R, P), tiles, nthreads, (rowbad, colbad, redo, tag))
        tiles = np.flatnonzero(redo).astype(np.int64)  # specials or top binade: the int64 kernel
        LAST_RUN["narrow_tiles"] = ntiles - tiles.size
    LAST_RUN["wide_tiles"] = tiles.size
    if tiles.size:
        _tiles(gemm_tiles, (Adec, Bt, Z, Gk, R, P), tiles, min(nthreads, tiles.size))
    return Z, G


def _c_or_f(codes):
    """``codes`` if C- or Fortran-contiguous (a transposed operand is a Fortran view), else a
    C copy: the prologue is compiled for those two layouts only."""
    flags = codes.flags
    return codes if flags.c_contiguous or flags.f_contiguous else np.ascontiguousarray(codes)


#: Tile lists per thread in the kernels' queue: a thread that finishes early (the machine's
#: other jobs slowed the other) takes the next list.
CHUNKS_PER_THREAD = 4


def _tiles(kernel, args, tiles, nthreads, tail=()):
    """``kernel(*args, tile_list, *tail)`` over ``tiles``, in contiguous lists on ``nthreads``."""
    if nthreads <= 1:
        kernel(*args, tiles, *tail)
        return
    chunks = np.array_split(tiles, min(tiles.size, nthreads * CHUNKS_PER_THREAD))
    _spread(lambda c: kernel(*args, chunks[c], *tail), len(chunks), nthreads)


def _spread(task, ntasks: int, nthreads: int):
    """``task(t)`` for every ``t`` in ``range(ntasks)``: on the calling thread and
    ``nthreads - 1`` threads of a pool kept between calls, each taking the next ``t``
    when it is free (the compiled tasks release the GIL). Re-raises a task's error."""
    if nthreads <= 1 or ntasks <= 1:
        for t in range(ntasks):
            task(t)
        return
    counter = itertools.count()  # next() on it is atomic under the GIL

    def work():
        for t in counter:
            if t >= ntasks:
                return
            task(t)

    jobs = [_pool(nthreads - 1).submit(work) for _ in range(min(nthreads, ntasks) - 1)]
    error = None
    try:
        work()
    except BaseException as e:  # noqa: BLE001 - re-raised once the other threads are done
        error = e
    for job in jobs:
        e = job.exception()
        error = error or e
    if error is not None:
        raise error


_POOL: dict = {}  # "pool": the ThreadPoolExecutor, "workers": its size
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The worker threads of :func:`_spread` (at least ``workers``): started on first use and
    kept, so that a call does not pay for starting threads."""
    with _POOL_LOCK:
        if _POOL.get("workers", 0) < workers:
            if _POOL:
                _POOL["pool"].shutdown(wait=False)
            _POOL.update(pool=ThreadPoolExecutor(workers, thread_name_prefix="srmac-fast"),
                         workers=workers)
        return _POOL["pool"]


def _forget_pool():
    """In a forked child the pool's threads do not exist: start a new pool there."""
    global _POOL_LOCK
    _POOL.clear()
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
