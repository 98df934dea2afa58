"""Test vectors for the MAC benches: directed corner cases, random operations and chains.

The stream is a list of cycles (``valid``, ``first``, ``a``, ``b``, ``c``,
``rand``); the expected accumulator code of every valid operation is computed
with the golden model (``ref.mac``, vectorised per chain position). With the
built-in generator the random words are the ``ref.prng`` stream of PE (0, 0),
one word per valid operation, and the first chain is re-checked against
``ref.dot(..., seed=seed)``.

:func:`make_interleaved_stream` is the stream of an interleaved MAC
(``MacUnit(..., interleave=L)``): cycle ``t`` belongs to chain ``t mod L``, and
chain ``l`` is a stream of its own (its own chains, idle cycles and, with the
built-in generator, the words of PE ``(l, 0)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import ref
from ref.config import MacConfig
from ref.formats import FloatFormat
from ref.prng import Xorshift32

__all__ = ["Stream", "make_stream", "make_interleaved_stream", "corner_codes", "random_finite"]


@dataclass
class Stream:
    """Cycle-by-cycle stimulus (int64 arrays, one entry per cycle) and expectations."""

    valid: np.ndarray
    first: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    rand: np.ndarray  # per cycle (port mode drives it; prng mode: the expected word)
    z_in: np.ndarray  # per cycle: the accumulator input the operation sees (golden)
    expected: np.ndarray  # per cycle: expected acc after the operation (-1 when idle)

    @property
    def ops(self) -> int:
        return int(self.valid.sum())


def corner_codes(fmt: FloatFormat) -> list[int]:
    """Codes of both signs: zeros, subnormal extremes, min normal, 1, 1+ulp, max, inf, NaN."""
    man = fmt.man_bits
    mags = [
        0,
        1 << man,
        fmt.bias << man,
        (fmt.bias << man) + 1,
        fmt.max_code,
        fmt.max_code - 1,
        (fmt.bias << man) | fmt.man_mask,
    ]
    if fmt.subnormals and man:
        mags += [1, fmt.man_mask]
    else:
        mags += [1]  # reads as zero when subnormals are off
    if fmt.inf_code is not None:
        mags.append(fmt.inf_code)
    if fmt.nan_code is not None:
        mags.append(fmt.nan_code)
    out = sorted({m for m in mags if 0 <= m <= fmt.mag_mask})
    return out + [m | fmt.sign_mask for m in out]


def _directed(cfg: MacConfig, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, a, b) triples for the corner cases of the contract."""
    fi, fa = cfg.in_fmt, cfg.acc_fmt
    ci = np.array(corner_codes(fi), dtype=np.int64)
    cz = np.array(corner_codes(fa), dtype=np.int64)
    A, B = (x.ravel() for x in np.meshgrid(ci, ci))
    zs, as_, bs = [], [], []
    # Every corner product against every corner accumulator (zeros of both signs,
    # subnormals, max finite + overflow, inf - inf, NaN, 0 * inf).
    for z in cz:
        zs.append(np.full(A.shape, z))
        as_.append(A)
        bs.append(B)
    # Products of random inputs against accumulators chosen around them.
    n = 400
    a = rng.integers(0, fi.num_codes, n)
    b = rng.integers(0, fi.num_codes, n)
    with np.errstate(all="ignore"):
        p = ref.decode(a, fi) * ref.decode(b, fi)
        p = np.where(np.isfinite(p), p, 1.0)
        picks = [
            -p,  # cancellation (to zero when representable)
            -p * (1 + 2.0**-fa.precision),  # close path, d = 0
            -p * 1.5,
            -p * 0.75,  # close path, d = 1 / d = 0
            -p * 2.5,
            -p * 0.3,  # far path effective subtraction, near the d = 1 edge
            p * 0.5,
            p * 2.0,
            p * 4.0,
            -p * 4.0,
            p * 2.0 ** -(fa.precision + 2),
            -p
            * 2.0 ** -(fa.precision + (cfg.rbits or 1) + 3),  # far: tiny addend only in the sticky
            p * 2.0 ** (fa.precision + 3),
        ]
        for v in picks:
            zs.append(ref.encode(v, fa, "rz"))
            as_.append(a)
            bs.append(b)
        # Carry-out in rounding: accumulator with an all-ones significand, same sign.
        top = ref.encode(p, fa, "rz") | fa.man_mask
        top = np.where((top & fa.mag_mask) > fa.max_code, fa.max_code | (top & fa.sign_mask), top)
        zs.append(top)
        as_.append(a)
        bs.append(b)
    return (
        np.concatenate(zs).astype(np.int64),
        np.concatenate(as_).astype(np.int64),
        np.concatenate(bs).astype(np.int64),
    )


def random_finite(fmt: FloatFormat, rng, n: int, p_special: float = 0.002) -> np.ndarray:
    """``n`` random codes of ``fmt`` (int64), mostly finite.

    Uniform over all codes, except that a NaN or infinity is kept only with
    probability ``p_special`` and otherwise replaced by a random finite code of
    the same sign (formats with NaN; others keep every code). ``rng`` is a
    ``numpy.random.Generator``.
    """
    codes = rng.integers(0, fmt.num_codes, n)
    if fmt.has_nan:
        bad = np.isnan(ref.decode(codes, fmt)) | np.isinf(ref.decode(codes, fmt))
        keep = rng.random(n) < p_special
        fresh = rng.integers(0, 1 << (fmt.width - 1), n) & ~np.int64(
            fmt.exp_field_max << fmt.man_bits
        )
        codes = np.where(bad & ~keep, fresh | (codes & fmt.sign_mask), codes)
    return codes.astype(np.int64)


def make_stream(
    cfg: MacConfig,
    n_ops: int,
    *,
    seed: int = 1,
    rand_mode: str = "port",
    prng_seed: int = 0,
    idle: float = 0.0,
    pe: tuple[int, int] = (0, 0),
) -> Stream:
    """A stream of about ``n_ops`` operations: directed ops, random single ops, random chains.

    ``idle``: fraction of idle cycles (in_valid low, junk on the data inputs)
    inserted between operations. ``pe``: whose generator stream the built-in
    generator gives (``rand_mode="prng"``).
    """
    if n_ops < 1:
        raise ValueError(f"n_ops must be >= 1, got {n_ops}")
    rng = np.random.default_rng(seed)
    fi, fa = cfg.in_fmt, cfg.acc_fmt
    dz, da, db = _directed(cfg, rng)
    n_dir = min(len(dz), n_ops // 2)
    sel = rng.permutation(len(dz))[:n_dir]
    # Chains: operation k of chain j. Single-op chains first (directed + random), then
    # random chains of geometric lengths issued back to back.
    n_single = (n_ops - n_dir) // 3
    n_chain = n_ops - n_dir - n_single
    lens = []
    while sum(lens) < n_chain:
        lens.append(int(min(rng.geometric(1 / 12), 96)))
    lens[-1] -= sum(lens) - n_chain
    lens = [x for x in lens if x > 0]
    single_z = np.where(
        rng.random(n_single) < 0.5,
        rng.integers(0, fa.num_codes, n_single),
        random_finite(fa, rng, n_single),
    )
    first_c = np.concatenate([dz[sel], single_z, random_finite(fa, rng, len(lens))])
    a = np.concatenate(
        [da[sel], rng.integers(0, fi.num_codes, n_single), random_finite(fi, rng, n_chain)]
    )
    b = np.concatenate(
        [db[sel], rng.integers(0, fi.num_codes, n_single), random_finite(fi, rng, n_chain)]
    )
    # Chain c values: 30 % start from +0 as ref.dot does by default.
    chain_c = first_c[n_dir + n_single :]
    chain_c[rng.random(len(chain_c)) < 0.3] = 0
    lengths = np.array([1] * (n_dir + n_single) + lens, dtype=np.int64)
    n = int(lengths.sum())
    first = np.zeros(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first[starts] = 1
    chain_of = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(n) - starts[chain_of]
    c = np.where(first == 1, first_c[chain_of], rng.integers(0, fa.num_codes, n))

    nb = cfg.rand_bits
    if nb and rand_mode == "prng":
        g = Xorshift32(prng_seed, *pe)
        rand = np.array([g.next_bits(nb) for _ in range(n)], dtype=np.int64)
    elif nb:
        rand = rng.integers(0, 1 << nb, n)
        ext = rng.random(n)
        rand = np.where(ext < 0.05, 0, np.where(ext > 0.95, (1 << nb) - 1, rand))
    else:
        rand = np.zeros(n, dtype=np.int64)

    # Golden results, one vectorised ref.mac per chain position.
    expected = np.zeros(n, dtype=np.int64)
    z_in = np.zeros(n, dtype=np.int64)
    for k in range(int(lengths.max())):
        idx = np.nonzero(pos == k)[0]
        z = c[idx] if k == 0 else expected[idx - 1]
        z_in[idx] = z
        expected[idx] = ref.mac(z, a[idx], b[idx], cfg, rand=rand[idx] if nb else None)

    if nb and rand_mode == "prng" and len(lens):
        # Cross-check the stream with ref's own generator: a single chain from reset.
        j = n_dir + n_single
        s, L = int(starts[j]), int(lengths[j])
        g = Xorshift32(prng_seed, *pe)
        for _ in range(s):
            g.next_word()
        words = np.array([g.next_bits(nb) for _ in range(L)])
        got = ref.dot(a[s : s + L], b[s : s + L], cfg, z=c[s], rand=words, backend="reference")
        if int(got) != int(expected[s + L - 1]):
            raise AssertionError("vector generator disagrees with ref.dot on the generator stream")

    # Idle cycles between operations (junk on the data inputs).
    if idle > 0:
        gaps = rng.random(n) < idle
        total = n + int(gaps.sum())
        valid = np.ones(total, dtype=np.int64)
        where_idle = np.nonzero(gaps)[0] + np.arange(int(gaps.sum()))
        valid[where_idle] = 0
        out = {}
        for name, arr in (
            ("first", first),
            ("a", a),
            ("b", b),
            ("c", c),
            ("rand", rand),
            ("z_in", z_in),
            ("expected", expected),
        ):
            full = np.zeros(total, dtype=np.int64)
            full[valid == 1] = arr
            out[name] = full
        junk = valid == 0
        out["a"][junk] = rng.integers(0, fi.num_codes, int(junk.sum()))
        out["first"][junk] = rng.integers(0, 2, int(junk.sum()))
        out["expected"][junk] = -1
        return Stream(valid, **out)
    return Stream(np.ones(n, dtype=np.int64), first, a, b, c, rand, z_in, expected)


def make_interleaved_stream(cfg: MacConfig, n_ops: int, interleave: int, *, seed: int = 1,
                            rand_mode: str = "port", prng_seed: int = 0,
                            idle: float = 0.0) -> Stream:
    """The stream of ``interleave`` independent chains taking turns, cycle by cycle.

    Chain ``l`` is ``make_stream(cfg, n_l, seed=seed + l, pe=(l, 0), ...)`` with the
    ``n_ops`` operations shared out (``n_l`` is ``n_ops // interleave``, one more for the
    first ``n_ops % interleave`` chains, at least 1); cycle ``t`` carries cycle
    ``t // interleave`` of chain ``t % interleave`` (idle once a chain has run out).
    ``expected`` stays in issue order, which is the order of the results at ``out_valid``.
    """
    L = int(interleave)
    if L < 1:
        raise ValueError(f"interleave must be >= 1, got {interleave}")
    share = [max(1, n_ops // L + (l < n_ops % L)) for l in range(L)]
    parts = [make_stream(cfg, share[l], seed=seed + l, rand_mode=rand_mode,
                         prng_seed=prng_seed, idle=idle, pe=(l, 0)) for l in range(L)]
    n = max(len(p.valid) for p in parts)
    out = {}
    for name in ("valid", "first", "a", "b", "c", "rand", "z_in", "expected"):
        col = np.zeros((n, L), dtype=np.int64)
        if name == "expected":
            col[:] = -1
        for l, p in enumerate(parts):
            v = getattr(p, name)
            col[: len(v), l] = v
        out[name] = col.reshape(-1)
    return Stream(**out)
