"""Which implementation runs an emulated GEMM: the reference, the CPU kernels or the GPU kernels.

:func:`matmul` and :func:`dot` are the public ``ref.matmul`` / ``ref.dot``. They
give :func:`ref.chain.matmul_reference`'s codes whatever runs them;
:func:`choose` says which path a call takes:

========== ================================================ ==========================
path       when                                             module
========== ================================================ ==========================
reference  ``backend="reference"``; or nothing faster fits  :mod:`ref.chain`
cpu        NumPy arrays / CPU tensors, numba installed      :mod:`ref.fast`
device     CUDA tensors, Triton installed                   :mod:`ref.fast.device`
========== ================================================ ==========================

``backend="fast"`` insists on a compiled path and raises a one-line error
when the arrays' path needs a package that is missing. This module is the only
one that knows all three paths, so none of them imports another's caller:
``ref.chain`` (the specification) imports neither kernel, ``ref.fast`` and
``ref.fast.device`` import ``ref.chain`` (argument checks) and nothing above it
(tests/test_import_graph.py checks that ``ref/`` has no import cycle).
"""

from __future__ import annotations

from . import fast
from .backend import is_torch
from .chain import dot_operands, matmul_reference
from .config import MacConfig, check_config
from .fast import device

__all__ = ["matmul", "dot", "choose", "BACKENDS", "PATHS"]

#: ``backend=`` values of :func:`matmul` / :func:`dot`.
BACKENDS = ("auto", "fast", "reference")
#: What :func:`choose` returns.
PATHS = ("reference", "cpu", "device")


def _devices(arrays) -> set:
    return {a.device.type for a in arrays if a is not None and is_torch(a)}


def choose(A, B, C=None, rand=None, state=None, *, backend: str = "auto") -> str:
    """The path (one of :data:`PATHS`) that :func:`matmul` takes for these arguments."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "reference":
        return "reference"
    arrays = (A, B, C, rand, state)
    kinds = _devices(arrays)
    if "cuda" in kinds:
        if device.available(*arrays):
            return "device"
        if backend == "fast":
            raise ValueError("backend='fast' on CUDA tensors needs Triton: pip install 'srmac[gpu]' "
                             "(or use backend='auto', which runs the reference loop on the GPU)")
        return "reference"
    if kinds - {"cpu"}:
        if backend == "fast":
            others = ", ".join(repr(k) for k in sorted(kinds - {"cpu"}))
            raise ValueError(f"backend='fast' runs on the CPU or a CUDA GPU, not on the {others} "
                             "device")
        return "reference"
    if fast.available(*arrays):
        return "cpu"
    if backend == "fast":
        raise ValueError("backend='fast' needs numba: pip install numba")
    return "reference"


def matmul(A, B, cfg: MacConfig, C=None, *, seed: int = 0, rand=None, state=None,
           return_state: bool = False, backend: str = "auto"):
    """Emulated ``C + A @ B`` on codes: :func:`ref.chain.matmul_reference`'s results, fast.

    Same arguments and the same codes as :func:`ref.chain.matmul_reference` (the
    specification). ``backend``: ``"auto"`` (default) runs the compiled path for
    where the arrays live (numba on the CPU, Triton on a CUDA GPU) when it is
    installed and the reference loop otherwise; ``"fast"`` insists on the
    compiled path; ``"reference"`` runs the readable loop.
    """
    cfg = check_config(cfg, "ref.matmul")
    path = choose(A, B, C, rand, state, backend=backend)
    run = {"reference": matmul_reference, "cpu": fast.matmul, "device": device.matmul}[path]
    return run(A, B, cfg, C, seed=seed, rand=rand, state=state, return_state=return_state)


def dot(a, b, cfg: MacConfig, z=None, *, seed: int = 0, rand=None, backend: str = "auto"):
    """The chain ``z <- round(z + a[k] * b[k])`` over 1-D code arrays (PE (0, 0)).

    ``rand``, if given, is a length-n array of random words. Returns a 0-d code.
    ``backend`` as in :func:`matmul`.
    """
    cfg = check_config(cfg, "ref.dot")
    A, B, C, R = dot_operands(a, b, z, rand)
    return matmul(A, B, cfg, C, seed=seed, rand=R, backend=backend)[0, 0]
