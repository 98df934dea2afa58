"""The fast path on a GPU: MAC chains in fused Triton kernels, one program per output tile.

:func:`matmul` takes :func:`ref.chain.matmul_reference`'s arguments (checked
by the same :func:`ref.chain.prepare`) as torch tensors on a CUDA device and
returns the same codes, on that device. Like the CPU path it decodes each
operand once (a gather from the ``2**width`` table for formats up to 16 bits),
then runs

1. the int32 kernel (:func:`ref.fast.triton_kernels.gemm_narrow`) over every
   ``BM x BN`` output tile when the configuration fits int32 lanes
   (:func:`ref.fast.plan.fits_narrow`, the CPU's rule); a tile that meets a
   NaN or an infinity in its A rows, B columns or initial accumulators, or
   whose results reach the top binade (where they may overflow), is left
   untouched and flagged;
2. the int64 kernel (:func:`ref.fast.triton_kernels.gemm_wide`) over the
   flagged tiles (every tile when the configuration does not fit int32).

Triton is an optional dependency (``pip install 'srmac[gpu]'``; CUDA builds of
torch ship it). It is imported on first use, so ``import ref`` stays light.
With ``TRITON_INTERPRET=1`` in the environment the same kernels run on CPU
tensors in Triton's interpreter: that is how CI checks them code for code
(tests/test_device_kernel.py).
"""

from __future__ import annotations

import importlib.util
import os

from ..backend import is_torch
from ..chain import matmul_reference, prepare
from ..config import MacConfig
from . import layout as L
from .plan import decode_codes, decode_table, fits_int32, fits_narrow, params

__all__ = ["matmul", "available", "triton_available", "interpreting", "block_shape",
           "kernel_constants", "KERNELS", "BLOCK", "LAST_RUN"]

#: Force the tile shape ``(BM, BN, num_warps)`` (tests, tuning); None: :func:`block_shape`.
BLOCK: tuple[int, int, int] | None = None

#: Set False to force the int64 kernel everywhere (tests compare both kernels).
NARROW = True

#: Tiles of the last call per kernel (not thread-safe): ``narrow_tiles`` finished in int32
#: lanes, ``wide_tiles`` ran the int64 kernel.
LAST_RUN = {"narrow_tiles": 0, "wide_tiles": 0}


def triton_available() -> bool:
    """True when Triton can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when ``TRITON_INTERPRET`` asks Triton to run kernels in its CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on")


def available(*arrays) -> bool:
    """True when :func:`matmul` can run these arrays: Triton installed, and every tensor on a
    CUDA device (or on the CPU when :func:`interpreting`)."""
    if not triton_available():
        return False
    kinds = {a.device.type for a in arrays if a is not None and is_torch(a)}
    allowed = {"cuda", "cpu"} if interpreting() else {"cuda"}
    return bool(kinds) and kinds <= allowed and ("cuda" in kinds or interpreting())


_KERNELS = None


def _kernels():
    """:mod:`ref.fast.triton_kernels`, imported on first use (Triton is heavy and optional)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = importlib.import_module(".triton_kernels", __package__)
    return _KERNELS


def block_shape(M: int, N: int, device) -> tuple[int, int, int]:
    """``(BM, BN, num_warps)`` of the output tiles: 32 x 32 when that still gives every
    multiprocessor four programs, else 16 x 16 (small products); :data:`BLOCK` or
    ``SRMAC_TRITON_BLOCK=BMxBN[:warps]`` override it."""
    if BLOCK is not None:
        return BLOCK
    env = os.environ.get("SRMAC_TRITON_BLOCK")
    if env:
        shape, _, warps = env.partition(":")
        bm, bn = (int(v) for v in shape.lower().split("x"))
        return bm, bn, int(warps or 4)
    sms = 1
    if device.type == "cuda":
        torch = importlib.import_module("torch")
        sms = torch.cuda.get_device_properties(device).multi_processor_count
    tiles32 = -(-M // 32) * -(-N // 32)
    return (32, 32, 4) if tiles32 >= 4 * sms else (16, 16, 2)


#: The two kernels of :mod:`ref.fast.triton_kernels`, by the name :func:`kernel_constants` takes.
KERNELS = ("narrow", "wide")


def kernel_constants(cfg: MacConfig, kernel: str, source: int, bm: int, bn: int) -> dict:
    """The ``constexpr`` arguments of ``gemm_<kernel>`` (``kernel``: ``"narrow"`` or ``"wide"``)
    for ``cfg``: the parameter vector :func:`ref.fast.plan.params` by name, the random-word
    ``source`` (0: none, 1: generator states, 2: explicit words) and the ``bm x bn`` tile."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    P = [int(v) for v in params(cfg)]
    c = dict(MODE=P[L.P_MODE], SOURCE=source, R=P[L.P_R], EXTRA=P[L.P_EXTRA], W=P[L.P_W],
             MAN=P[L.P_MAN], EFMAX=P[L.P_EFMAX], BIAS=P[L.P_BIAS], SUB=P[L.P_SUB],
             SPEC=P[L.P_SPEC], EMIN=P[L.P_EMIN], RMASK=P[L.P_RMASK], BM=bm, BN=bn)
    if kernel == "narrow":
        c.update(EMAX=P[L.P_EMAX])
    else:
        c.update(MAXCODE=P[L.P_MAXCODE], OVF=P[L.P_OVF], INFVAL=P[L.P_INFVAL],
                 NANVAL=P[L.P_NANVAL])
    return c


_TABLES: dict = {}


def _decoded(codes, fmt, ops):
    """Decoded operand (..., 4) int32 on the codes' device (table gather up to 16 bits)."""
    torch = ops.torch
    if fmt.width <= 16:
        key = (fmt, codes.device)
        table = _TABLES.get(key)
        if table is None:
            table = _TABLES[key] = torch.from_numpy(decode_table(fmt)).to(codes.device)
        return table[codes]
    return decode_codes(codes, fmt, ops)


def matmul(A, B, cfg: MacConfig, C=None, *, seed: int = 0, rand=None, state=None,
           return_state: bool = False):
    """:func:`ref.chain.matmul_reference` on the tensors' GPU: same arguments, same codes."""
    ops, A, B, z, rand, gen = prepare(A, B, cfg, C, seed=seed, rand=rand, state=state)
    if ops.name != "torch" or not available(A, B, z):
        raise ValueError("ref.fast.device.matmul needs torch tensors on a CUDA device and Triton "
                         "(pip install 'srmac[gpu]')")
    if not fits_int32(cfg.in_fmt):
        return matmul_reference(A, B, cfg, C, seed=seed, rand=rand, state=state,
                                return_state=return_state)
    torch = ops.torch
    M, K = (int(v) for v in A.shape)
    N = int(B.shape[1])
    dev = A.device
    Z = z.to(torch.int64).contiguous().clone()
    G = None if gen is None else gen.to(device=dev, dtype=torch.int64).contiguous().clone()
    LAST_RUN.update(narrow_tiles=0, wide_tiles=0)
    if M and N and K:
        _run(A, B, cfg, Z, G, rand, ops, M, N, K)
    if return_state:
        return Z, G
    return Z


def _run(A, B, cfg, Z, G, rand, ops, M, N, K):
    torch = ops.torch
    dev = Z.device
    kern = _kernels()
    Adec = _decoded(A, cfg.in_fmt, ops).permute(1, 2, 0).contiguous()  # (K, 4, M)
    Bdec = _decoded(B, cfg.in_fmt, ops).permute(0, 2, 1).contiguous()  # (K, 4, N)
    dummy = torch.zeros(1, dtype=torch.int64, device=dev)
    Gk = dummy if G is None else G
    Rk = dummy if rand is None else rand.to(device=dev, dtype=torch.int64).contiguous()
    source = 1 if G is not None else (2 if rand is not None else 0)
    bm, bn, warps = block_shape(M, N, dev)
    tm, tn = -(-M // bm), -(-N // bn)
    if NARROW and fits_narrow(cfg):
        special = L.C_NAN | L.C_INF
        rowbad = ((Adec[:, 3, :] & special) != 0).any(dim=0).to(torch.int32).contiguous()
        colbad = ((Bdec[:, 3, :] & special) != 0).any(dim=0).to(torch.int32).contiguous()
        redo = torch.zeros(tm * tn, dtype=torch.int32, device=dev)
        kern.gemm_narrow[(tm, tn)](Adec, Bdec, Z, Gk, Rk, rowbad, colbad, redo, M, N, K,
                                   num_warps=warps,
                                   **kernel_constants(cfg, "narrow", source, bm, bn))
        tiles = torch.nonzero(redo).flatten().to(torch.int32)
        LAST_RUN["narrow_tiles"] = tm * tn - int(tiles.numel())
    else:
        tiles = torch.arange(tm * tn, dtype=torch.int32, device=dev)
    LAST_RUN["wide_tiles"] = int(tiles.numel())
    if tiles.numel():
        kern.gemm_wide[(int(tiles.numel()),)](Adec, Bdec, Z, Gk, Rk, tiles, tn, M, N, K,
                                              num_warps=warps,
                                              **kernel_constants(cfg, "wide", source, bm, bn))


def warm_up(cfg: MacConfig, device="cuda") -> None:
    """Compile (or load from Triton's cache) the kernels ``cfg`` needs, on a tiny product."""
    torch = importlib.import_module("torch")
    A = torch.zeros((1, 1), dtype=torch.int64, device=device)
    matmul(A, A, cfg)

