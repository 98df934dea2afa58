"""Fast emulated GEMM: the same codes as :func:`ref.chain.matmul_reference`, compiled.

:func:`matmul` takes the reference's arguments (checked by the same
:func:`ref.chain.prepare`), decodes each operand matrix once with the
reference's own :func:`ref.codec.unpack`, and runs the MAC chains in numba
kernels: tiles of one output row by ``JB`` columns in parallel on all cores,
the tile's accumulators resident while ``k`` advances, random words generated
in the kernel from each PE's xorshift32 state.

Two CPU kernels give the same codes:

* :mod:`ref.fast.narrow` (int32 lanes, accumulators kept decoded, one loop
  per rounding mode) for configurations whose window fits 31 bits
  (:func:`uses_narrow`: e.g. E5M2 / E4M3 into E6M5 / FP16 with r up to
  21 / 16). It handles finite chains only: a tile that meets a NaN or an
  infinity, or overflows, is handed to
* :mod:`ref.fast.kernel` (int64 lanes, every rule), which also runs every
  other configuration.

CUDA tensors run on their device (:mod:`ref.fast.device`). See
docs/performance.md for the measurements behind these choices.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..backend import NumpyOps, is_torch
from ..codec import unpack
from ..config import MacConfig
from . import layout as L

__all__ = ["matmul", "available", "on_cuda", "params", "decode_operand", "threads", "JB",
           "THREADS", "NARROW", "uses_narrow", "LAST_RUN"]

#: Columns per tile: the accumulators of a tile stay in L1 while k advances
#: (256 measured ~8 % faster than 128 in the int32 kernel: fewer calls per MAC).
JB = 256

_MODES = {"rn": L.RN, "rz": L.RZ, "sr_lazy": L.SR_LAZY, "sr_eager": L.SR_EAGER}
_SPECIALS = {"ieee": L.SPEC_IEEE, "fn": L.SPEC_FN, "none": L.SPEC_NONE}


def _numba_ok() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def on_cuda(*arrays) -> bool:
    """True when any of ``arrays`` is a torch tensor on a CUDA device."""
    return any(a is not None and is_torch(a) and a.device.type == "cuda" for a in arrays)


def available(*arrays) -> bool:
    """True when :func:`matmul` can run these arrays: CUDA tensors, or numba for the CPU."""
    if any(a is not None and is_torch(a) and a.device.type not in ("cpu", "cuda") for a in arrays):
        return False
    return on_cuda(*arrays) or _numba_ok()


def params(cfg: MacConfig) -> np.ndarray:
    """The kernel's int64 parameter vector for ``cfg`` (indices ``layout.P_*``)."""
    acc = cfg.acc_fmt
    mode = _MODES[cfg.rounding]
    if cfg.rounding == "rz" or acc.saturate or acc.specials == "none":
        ovf = acc.max_code
    elif acc.specials == "ieee":
        ovf = acc.inf_code
    else:
        ovf = -1  # the canonical NaN
    if acc.has_inf:
        infval = acc.inf_code
    elif acc.saturate or not acc.has_nan:
        infval = acc.max_code
    else:
        infval = -1
    P = np.zeros(L.P_NPARAMS, dtype=np.int64)
    P[L.P_MODE] = mode
    P[L.P_R] = cfg.rbits or 0
    P[L.P_W] = acc.width
    P[L.P_MAN] = acc.man_bits
    P[L.P_EFMAX] = acc.exp_field_max
    P[L.P_BIAS] = acc.bias
    P[L.P_SUB] = int(acc.subnormals)
    P[L.P_SPEC] = _SPECIALS[acc.specials]
    P[L.P_EMIN] = acc.emin
    P[L.P_MAXCODE] = acc.max_code
    P[L.P_OVF] = ovf
    P[L.P_INFVAL] = infval
    P[L.P_NANVAL] = acc.nan_code if acc.has_nan else 0
    P[L.P_RMASK] = (1 << cfg.rand_bits) - 1
    return P


def fits_int32(fmt) -> bool:
    """True when every decoded field of ``fmt`` fits int32 (not so for an extreme custom bias)."""
    lim = 1 << 30
    return abs(fmt.bias) + (1 << fmt.exp_bits) + fmt.man_bits < lim and fmt.precision <= 30


def decode_operand(codes, fmt) -> np.ndarray:
    """(..., 4) int32 per code: sign, integer significand, exponent, class bits.

    The reference's :func:`ref.codec.unpack` decodes; for formats of up to 16
    bits it decodes the ``2**width`` codes once into a table and the operand
    is one gather from it. Class bits: ``1`` NaN, ``2`` inf, ``4`` zero
    (``layout.C_*``). int32 holds every field when :func:`fits_int32`: input
    significands have at most 29 bits (``MacConfig`` checks it).
    """
    codes = np.asarray(codes, dtype=np.int64)
    if fmt.width <= 16:
        return _decode_table(fmt)[codes]
    return _decode(codes, fmt)


def _decode(codes, fmt) -> np.ndarray:
    sign, sig, exp, is_nan, is_inf = unpack(NumpyOps(), codes, fmt)
    zero = (sig == 0) & ~(is_nan | is_inf)
    cls = is_nan * L.C_NAN + is_inf * L.C_INF + zero * L.C_ZERO
    return np.stack([sign, sig, exp, cls], axis=-1).astype(np.int32)


_TABLES: dict = {}


def _decode_table(fmt) -> np.ndarray:
    table = _TABLES.get(fmt)
    if table is None:
        table = _TABLES[fmt] = _decode(np.arange(fmt.num_codes, dtype=np.int64), fmt)
    return table


def matmul(A, B, cfg: MacConfig, C=None, *, seed: int = 0, rand=None, state=None,
           return_state: bool = False):
    """:func:`ref.chain.matmul_reference`, compiled: same arguments, same codes."""
    from ..chain import prepare

    if on_cuda(A, B, C, rand, state):
        from .device import matmul_device

        return matmul_device(A, B, cfg, C, seed=seed, rand=rand, state=state,
                             return_state=return_state)
    if not fits_int32(cfg.in_fmt):
        from ..chain import matmul_reference

        return matmul_reference(A, B, cfg, C, seed=seed, rand=rand, state=state,
                                return_state=return_state)
    ops, A, B, z, rand, gen = prepare(A, B, cfg, C, seed=seed, rand=rand, state=state)
    to_np = (lambda x: x.cpu().numpy()) if ops.name == "torch" else np.asarray
    Z, G = _run_cpu(to_np(A), to_np(B), cfg, to_np(z), None if rand is None else to_np(rand),
                    None if gen is None else to_np(gen))
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


#: Below this many MACs one thread does the whole product (thread start-up costs more).
MIN_PARALLEL_MACS = 1 << 16


#: Set False to force the int64 kernel everywhere (tests compare both paths).
NARROW = True


def uses_narrow(cfg: MacConfig) -> bool:
    """True when :func:`matmul` runs ``cfg`` in the int32 kernel (:mod:`ref.fast.narrow`)."""
    from .narrow import fits

    return NARROW and fits(cfg)


#: Tiles of the last CPU call per kernel, for tests and benchmarks (not thread-safe):
#: ``narrow_tiles`` finished in int32 lanes, ``wide_tiles`` ran the int64 kernel.
LAST_RUN = {"narrow_tiles": 0, "wide_tiles": 0}


def _run_cpu(A, B, cfg, z, rand, gen):
    from .kernel import gemm_tiles

    M, K = A.shape
    N = B.shape[1]
    Adec = decode_operand(A, cfg.in_fmt)  # (M, K, 4)
    jb = max(1, min(JB, N))
    nJ = -(-N // jb)
    Bp = np.zeros((K, nJ * jb), np.int64)  # B padded to whole column tiles with +0 codes
    Bp[:, :N] = B
    # (nJ, K, 4, jb): a tile's row k of B, decoded, is one contiguous block
    Bt = np.ascontiguousarray(decode_operand(Bp.reshape(K, nJ, jb).transpose(1, 0, 2),
                                             cfg.in_fmt).transpose(0, 1, 3, 2))
    Z = np.array(z, dtype=np.int64, order="C", copy=True)
    G = np.zeros((0, 0), np.int64) if gen is None else np.array(gen, np.int64, order="C", copy=True)
    R = np.zeros((0, 0, 0), np.int64) if rand is None else np.ascontiguousarray(rand, np.int64)
    P = params(cfg)
    ntiles = M * nJ
    LAST_RUN.update(narrow_tiles=0, wide_tiles=0)
    if not (ntiles and K):
        return Z, (G if gen is not None else None)
    tiles = np.arange(ntiles, dtype=np.int64)
    if uses_narrow(cfg):
        from .narrow import gemm_tiles32, variant_tag

        special = L.C_NAN | L.C_INF
        rowbad = (Adec[:, :, 3] & special).any(axis=1)
        colbad = (Bt[:, :, 3, :] & special).any(axis=(1, 2))
        redo = np.zeros(ntiles, np.int8)
        source = 1 if gen is not None else (2 if rand is not None else 0)
        tag = variant_tag(int(P[L.P_MODE]), source)
        _parallel(gemm_tiles32, (Adec, Bt, Z, G, R, P), tiles, M * N * K,
                  (rowbad, colbad, redo, tag))
        tiles = np.flatnonzero(redo).astype(np.int64)  # specials or overflow: the int64 kernel
        LAST_RUN["narrow_tiles"] = ntiles - tiles.size
    LAST_RUN["wide_tiles"] = tiles.size
    if tiles.size:
        _parallel(gemm_tiles, (Adec, Bt, Z, G, R, P), tiles, M * N * K)
    return Z, (G if gen is not None else None)


def _parallel(kernel, args, tiles, macs, tail=()):
    """``kernel(*args, tile_list, *tail)`` over ``tiles`` split in contiguous parts, one per thread."""
    nthreads = min(threads(), tiles.size)
    if nthreads <= 1 or macs < MIN_PARALLEL_MACS:
        kernel(*args, tiles, *tail)
        return
    parts = np.array_split(tiles, nthreads)
    with ThreadPoolExecutor(nthreads) as pool:
        jobs = [pool.submit(kernel, *args, part, *tail) for part in parts]
        for job in jobs:
            job.result()
