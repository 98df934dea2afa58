"""The device kernels compiled ahead of time for an NVIDIA GPU, on a machine without one.

Triton's own toolchain (its LLVM and the ``ptxas`` its wheel ships) takes
:mod:`ref.fast.triton_kernels` down to a cubin for any compute capability
with no GPU and no driver. :func:`compile_kernel` does that for one kernel
and one configuration, with the same ``constexpr`` arguments a launch passes
(:func:`ref.fast.device.kernel_constants`): the CI test that the kernels
compile for sm_90 (tests/test_device_kernel.py) and the instruction counts of
``benchmarks/kernel_stats.py`` both go through it.

The kernels must not be in Triton's interpreter (``TRITON_INTERPRET`` unset
when Triton is first imported).
"""

from __future__ import annotations

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from ref.config import MacConfig

from . import triton_kernels
from .device import kernel_constants
from .plan import fits_narrow

__all__ = ["compile_kernel", "kernels_for"]

_POINTERS = dict(Adec="*i32", Bdec="*i32", Z="*i64", G="*i64", RAND="*i64")
_SIZES = dict(M="i32", N="i32", K="i32")
#: The run-time arguments of each kernel (Triton types); the others are constexpr.
_ARGUMENTS = {
    "narrow": dict(_POINTERS, rowbad="*i32", colbad="*i32", redo="*i32", **_SIZES),
    "wide": dict(_POINTERS, tiles="*i32", tiles_n="i32", **_SIZES),
}


def kernels_for(cfg: MacConfig) -> tuple[str, ...]:
    """The kernels a product of ``cfg`` can run: ``("narrow", "wide")``, or ``("wide",)``
    when the configuration does not fit int32 lanes."""
    return ("narrow", "wide") if fits_narrow(cfg) else ("wide",)


def compile_kernel(cfg: MacConfig, kernel: str, *, arch: int = 90, bm: int = 32, bn: int = 32,
                   warps: int = 4, source: int | None = None):
    """Triton's compiled kernel (``.asm["ptx"]``, ``.asm["cubin"]``, ...) of ``gemm_<kernel>``
    for ``cfg`` on compute capability ``arch`` (90: H100 / H200), ``bm x bn`` tiles and
    ``warps`` warps. ``source``: the random words (0 none, 1 generator states, 2 explicit);
    default 1 for stochastic rounding, else 0."""
    if triton_kernels.INTERPRET:
        raise RuntimeError("the kernels are in Triton's interpreter: unset TRITON_INTERPRET "
                           "before Triton is imported to compile them")
    if source is None:
        source = 1 if cfg.is_sr else 0
    fn = {"narrow": triton_kernels.gemm_narrow, "wide": triton_kernels.gemm_wide}[kernel]
    consts = kernel_constants(cfg, kernel, source, bm, bn)
    types = _ARGUMENTS[kernel]
    signature = {name: types.get(name, "constexpr") for name in fn.arg_names}
    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=consts),
                          target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})
