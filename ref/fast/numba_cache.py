"""Where numba keeps the compiled CPU kernels: a per-user cache folder, never the package.

numba's default for ``cache=True`` is a ``__pycache__`` folder next to the
source file, i.e. inside the installed package, which fails on a read-only
install and mixes build products into the source tree. :func:`njit` compiles
with ``cache=True`` into :func:`cache_dir` instead:

* ``$NUMBA_CACHE_DIR/srmac-<digest>`` when the user set ``NUMBA_CACHE_DIR``;
* else ``$XDG_CACHE_HOME/srmac/numba/<digest>`` (``~/.cache/srmac/numba/<digest>``
  when ``XDG_CACHE_HOME`` is unset or not absolute).

``<digest>`` is a hash of the kernel sources (every ``ref/fast/*.py``, and
``ref/prng.py``, whose seeding rule the prologue compiles). numba checks only
the file that defines a cached function, but the MAC bodies live in
:mod:`ref.fast.macbody`: keying the folder by all the sources means an edited
body is never served from a stale cache. The folder setting applies to
srmac's own functions only (numba reads ``config.CACHE_DIR`` when a function is
decorated); other numba users in the process keep their own setting.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import numba as nb

__all__ = ["cache_dir", "njit", "source_digest", "CACHE_USABLE"]

_HERE = Path(__file__).resolve().parent
#: Sources outside ref/fast/ that the kernels compile: the seeding rule (ref.fast.prologue).
_COMPILED_ELSEWHERE = (_HERE.parent / "prng.py",)


def source_digest() -> str:
    """12 hex digits of SHA-256 over the kernel sources (``ref/fast/*.py`` sorted by name,
    then ``ref/prng.py``)."""
    h = hashlib.sha256()
    for path in [*sorted(_HERE.glob("*.py")), *_COMPILED_ELSEWHERE]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def cache_dir(environ=None) -> Path:
    """The folder for srmac's numba cache (see the module docstring); not created here."""
    env = os.environ if environ is None else environ
    digest = source_digest()
    user = env.get("NUMBA_CACHE_DIR")
    if user:
        return Path(user) / f"srmac-{digest}"
    xdg = env.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path(env.get("HOME") or Path.home()) / ".cache"
    return base / "srmac" / "numba" / digest


@contextmanager
def _numba_cache_dir(path: Path):
    old = nb.config.CACHE_DIR
    nb.config.CACHE_DIR = str(path)
    try:
        yield
    finally:
        nb.config.CACHE_DIR = old


def _usable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


_DIR = cache_dir()
#: False when the cache folder cannot be created or written (no home, read-only file system).
CACHE_USABLE = _usable(_DIR)


def njit(**options):
    """``numba.njit(cache=True, **options)`` with the cache in :func:`cache_dir`.

    Where that folder is not usable (:data:`CACHE_USABLE`), the function is
    compiled without a disk cache rather than letting numba fall back to the
    package's ``__pycache__``.
    """

    def wrap(fn):
        if not CACHE_USABLE:
            return nb.njit(**options)(fn)
        with _numba_cache_dir(_DIR):
            return nb.njit(cache=True, **options)(fn)

    return wrap
