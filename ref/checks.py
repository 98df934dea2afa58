"""Input checks of the golden model: types, values and sizes, each refused in one line.

Every public entry point of ``ref`` (``encode``, ``decode``, ``mac``,
``matmul``, ``dot``, the array model) reads its arrays through these
functions, so a float code, a complex value, a bool, a string or a tensor on
the ``meta`` device is refused with a message that names it instead of being
cast, truncated or broadcast into a silently wrong result. Memory: the
entry points estimate what they will allocate and :func:`reserve` refuses a
request larger than the memory available (``MemAvailable``, the free CUDA
memory, or ``SRMAC_MEMORY_LIMIT``).

Wrong types raise :class:`InputTypeError` (both a ``TypeError`` and a
``ValueError``: the command line prints any ``ValueError`` as one line).
"""

from __future__ import annotations

import os
import re

import numpy as np

from .backend import is_torch

__all__ = [
    "InputTypeError", "InsufficientMemoryError", "integer_array", "real_array", "shape_of",
    "check_broadcasts_to", "reserve", "available_memory", "MEMORY_ENV", "RESERVE_FLOOR",
]

#: Environment variable that replaces the available-memory reading (bytes, or 512M / 2G / 1T).
MEMORY_ENV = "SRMAC_MEMORY_LIMIT"
#: Requests below this many bytes are not checked (reading the memory state costs a system call).
RESERVE_FLOOR = 64 << 20

_INT64_MAX = (1 << 63) - 1
_FLOAT64_EXACT_INT = 1 << 53


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type (a float code, a complex value, a string...)."""


class InsufficientMemoryError(MemoryError, ValueError):
    """A request whose estimated size exceeds the memory available."""


def _describe(dtype, sample) -> str:
    example = "" if sample is None else f" (e.g. {sample!r})"
    return f"{dtype}{example}"


def _first(arr):
    """The first element of a NumPy array or torch tensor as a Python scalar, or None."""
    try:
        flat = arr.reshape(-1)
        return flat[0].item() if flat.shape[0] else None
    except Exception:  # noqa: BLE001 - only used to word a message
        return None


def _torch_kind(t) -> str:
    """'b' (bool), 'c' (complex), 'f' (floating), 'i' (integer): a tensor's dtype kind."""
    import torch

    if t.dtype == torch.bool:
        return "b"
    if t.is_complex():
        return "c"
    if t.is_floating_point():
        return "f"
    return "i"


def _numpy_array(x, what: str):
    """``np.asarray(x)`` with None, ragged lists and other failures refused in one line."""
    if x is None:
        raise InputTypeError(f"{what} is None; pass an array or a number")
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputTypeError(f"{what} is not a rectangular array of numbers ({first})") from None


def integer_array(ops, x, what: str = "codes"):
    """``x`` as an int64 array of ``ops``: integer dtypes (or Python ints) only.

    Refused: float arrays (``1.5`` is not a code; neither is ``3.0``), bools,
    complex numbers, strings, None and values beyond int64. An empty list
    (which NumPy types as float64) reads as no integers.
    """
    if is_torch(x):
        _check_device(x, what)
        kind = _torch_kind(x)
        if kind != "i" and x.numel():
            raise InputTypeError(
                f"{what} must have an integer dtype, got {_describe(x.dtype, _first(x))}; "
                "codes and random words are integers (convert integral values with .long())"
            )
        return ops.asint(x)
    arr = _numpy_array(x, what)
    kind = arr.dtype.kind
    if kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
        raise ValueError(f"{what} value {int(arr.max())} is out of range (beyond int64)")
    if kind == "O" and arr.size:
        items = arr.reshape(-1).tolist()
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            big = max(items, key=abs)
            raise ValueError(f"{what} value {big} is out of range (beyond int64)")
    if kind not in "iu" and not (arr.size == 0 and kind in "fO"):
        raise InputTypeError(
            f"{what} must be integers (an integer dtype or Python ints), got "
            f"{_describe(arr.dtype, _first(arr))}; convert integral values with .astype(int)"
        )
    return ops.asint(arr)


def real_array(ops, x, what: str = "x"):
    """``x`` checked to be real numbers: the tensor itself, or ``np.asarray(x)`` (not converted).

    Refused: None, strings, objects, bools, complex numbers (their imaginary
    part would be dropped), and values that float64 cannot hold exactly
    (integers beyond 2**53, long doubles that do not round-trip): ``encode``
    rounds once, from the exact value.
    """
    if is_torch(x):
        _check_device(x, what)
        kind = _torch_kind(x)
        sample = x
    else:
        sample = _numpy_array(x, what)
        kind = sample.dtype.kind
    if kind == "c":
        raise InputTypeError(
            f"{what} is complex ({sample.dtype}); encode rounds real numbers: pass x.real "
            "(or x.imag) explicitly"
        )
    if kind == "b":
        raise InputTypeError(f"{what} is a bool array; encode rounds numbers: convert with .astype(float)")
    if kind not in "iuf" and not (kind == "O" and sample.size == 0):
        raise InputTypeError(
            f"{what} must be real numbers, got {_describe(sample.dtype, _first(sample))}"
        )
    if kind in "iu":
        n = sample.numel() if is_torch(sample) else sample.size
        if n:
            big = max(abs(int(sample.min())), abs(int(sample.max())))
            if big > _FLOAT64_EXACT_INT:
                raise ValueError(
                    f"{what} holds the integer {big}, which float64 cannot represent exactly "
                    "(|x| <= 2**53); encode reads float64 values: convert it yourself"
                )
    if not is_torch(sample) and sample.dtype.kind == "f" and sample.dtype.itemsize > 8:
        as64 = sample.astype(np.float64)
        if not np.array_equal(as64.astype(sample.dtype), sample, equal_nan=True):
            raise ValueError(
                f"{what} ({sample.dtype}) holds values that float64 cannot represent exactly; "
                "encode reads float64 values: convert it yourself"
            )
    return sample


def _check_device(t, what: str) -> None:
    if t.device.type == "meta":
        raise ValueError(
            f"{what} is on the 'meta' device, which holds shapes but no values; "
            "the golden model computes codes: pass CPU or CUDA tensors"
        )


def shape_of(x, what: str) -> tuple:
    """The shape of an array, tensor, list or scalar, without converting it."""
    if hasattr(x, "shape"):
        return tuple(x.shape)
    return tuple(_numpy_array(x, what).shape)


def check_broadcasts_to(shape, out_shape, what: str) -> None:
    """Refuse ``shape`` unless it broadcasts to ``out_shape`` without enlarging it."""
    shape, out_shape = tuple(shape), tuple(out_shape)
    try:
        ok = np.broadcast_shapes(shape, out_shape) == out_shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{what} has shape {shape}, which does not broadcast to the output shape {out_shape}"
        )


# ---- memory --------------------------------------------------------------------------------


def _parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not m:
        raise ValueError(
            f"{MEMORY_ENV}={text!r} is not a size; use bytes or a number with K, M, G or T (e.g. 8G)"
        )
    return int(m.group(1)) << (10 * " KMGT".index(m.group(2).upper() or " "))


def available_memory(device=None) -> tuple[int, str] | None:
    """``(bytes, source)`` available for a new allocation, or None when unknown.

    ``SRMAC_MEMORY_LIMIT`` wins; a CUDA device reports its free memory;
    otherwise the host's ``MemAvailable`` (Linux), else ``os.sysconf``'s
    available pages.
    """
    env = os.environ.get(MEMORY_ENV)
    if env:
        return _parse_size(env), MEMORY_ENV
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"free memory on {device}"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available pages"
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def reserve(nbytes: int, what: str, device=None) -> None:
    """Refuse a request of about ``nbytes`` when it exceeds the memory available.

    Called before a large allocation with an estimate of the peak working
    set (inputs widened to int64, unpacked operands, temporaries). Requests
    below :data:`RESERVE_FLOOR` are not checked unless ``SRMAC_MEMORY_LIMIT``
    is set.
    """
    if nbytes < RESERVE_FLOOR and not os.environ.get(MEMORY_ENV):
        return
    avail = available_memory(device)
    if avail is None:
        return
    limit, source = avail
    if nbytes > limit:
        raise InsufficientMemoryError(
            f"{what} needs about {_gib(nbytes)} of memory but {_gib(limit)} is available "
            f"({source}); split the work into smaller blocks, or set {MEMORY_ENV}=<bytes> "
            "to change the limit"
        )
