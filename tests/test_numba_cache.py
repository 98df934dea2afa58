"""numba's compiled kernels go to the user's cache folder, never into the installed package.

The check runs ``ref.matmul`` (which compiles the CPU kernels) in a fresh
interpreter with its own ``XDG_CACHE_HOME`` and compares the package's files
before and after: no numba index or object file appears under ``ref/``, and
both appear under ``$XDG_CACHE_HOME/srmac/numba/<digest>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("numba")

from ref.fast import numba_cache  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN = ("import numpy as np, ref; "
       "print(ref.matmul(np.full((3, 4), 0x3C), np.full((4, 2), 0x3C), "
       "ref.parse_mac('e5m2:e6m5:sr_eager:4'), seed=1).tolist())")


def _numba_files_written_since(t0):
    """numba index / object files under ref/ created or rewritten since ``t0``."""
    return sorted(str(p) for p in (ROOT / "ref").rglob("*.nb[ic]") if p.stat().st_mtime >= t0)


def _run(env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(env_extra, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    res = subprocess.run([sys.executable, "-c", RUN], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_cache_in_xdg_cache_home_not_in_the_package(tmp_path):
    t0 = time.time() - 1
    xdg = tmp_path / "xdg"
    out = _run({"XDG_CACHE_HOME": str(xdg), "HOME": str(tmp_path / "home")}, tmp_path)
    import numpy as np

    import ref

    want = ref.matmul_reference(np.full((3, 4), 0x3C), np.full((4, 2), 0x3C),
                                ref.parse_mac("e5m2:e6m5:sr_eager:4"), seed=1)
    assert out.strip() == str(want.tolist())
    assert not _numba_files_written_since(t0)
    cached = list((xdg / "srmac" / "numba" / numba_cache.source_digest()).rglob("*.nbi"))
    assert cached, f"no numba index under {xdg}"
    assert not (tmp_path / "home").exists()  # XDG_CACHE_HOME wins over HOME


def test_cache_dir_rules(tmp_path):
    digest = numba_cache.source_digest()
    assert numba_cache.cache_dir({"HOME": "/h"}) == Path("/h/.cache/srmac/numba") / digest
    assert numba_cache.cache_dir({"HOME": "/h", "XDG_CACHE_HOME": "/x"}) == Path(
        "/x/srmac/numba") / digest
    # a relative XDG_CACHE_HOME is invalid (XDG base directory spec): ignored
    assert numba_cache.cache_dir({"HOME": "/h", "XDG_CACHE_HOME": "rel"}) == Path(
        "/h/.cache/srmac/numba") / digest
    # the user's NUMBA_CACHE_DIR is respected, with a folder per kernel source version
    assert numba_cache.cache_dir({"NUMBA_CACHE_DIR": "/n", "HOME": "/h"}) == Path(
        f"/n/srmac-{digest}")


def test_digest_follows_the_kernel_sources(tmp_path, monkeypatch):
    """An edited MAC body (another file than the cached function's) gets a fresh folder."""
    for p in Path(numba_cache.__file__).parent.glob("*.py"):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(numba_cache, "_HERE", tmp_path)
    d0 = numba_cache.source_digest()
    body = tmp_path / "macbody.py"
    body.write_text(body.read_text() + "\n# edited\n")
    assert numba_cache.source_digest() != d0


def test_digest_follows_the_seeding_rule(tmp_path, monkeypatch):
    """ref/prng.py's seeding rule is compiled into the prologue: editing it changes the folder."""
    prng = tmp_path / "prng.py"
    prng.write_bytes(numba_cache._COMPILED_ELSEWHERE[0].read_bytes())
    monkeypatch.setattr(numba_cache, "_COMPILED_ELSEWHERE", (prng,))
    d0 = numba_cache.source_digest()
    prng.write_text(prng.read_text() + "\n# edited\n")
    assert numba_cache.source_digest() != d0
