# ruff: noqa: F821  (templates: the names they use are bound per target by bind_all)
"""The MAC bodies of the fast paths, written once for the CPU (numba) and the GPU (Triton).

Each function here is one step of :func:`ref.mac.mac_step` on already decoded
operands, in a small dialect that both compilers accept with the same
meaning: numba compiles it for one output (scalars, in a loop that LLVM
vectorises), Triton for a block of outputs (tensors). The functions are
templates: the names they use but do not define (casts, selects, bit counts
and constants) are bound by :func:`bind` to each target's definitions, in
:mod:`ref.fast.kernel` (numba) and :mod:`ref.fast.triton_kernels` (Triton):

=============  =========================================  =========================================
name           numba (:mod:`ref.fast.kernel`)             Triton (:mod:`ref.fast.triton_kernels`)
=============  =========================================  =========================================
``I``, ``L``   ``np.int32`` / ``np.int64`` casts          ``tl.cast(x, tl.int32 / tl.int64)``
``select``     ``a if c else b``                          ``tl.where(c, a, b)``
``smax/smin``  ``max`` / ``min``                          ``tl.maximum`` / ``tl.minimum``
``NOT``        ``not c``                                  ``c == 0``
``clz32/64``   LLVM ``ctlz``                              ``__nv_clz(ll)`` (exact float64 form in
                                                          the interpreter)
constants      ints                                       ``tl.constexpr``
=============  =========================================  =========================================

Dialect rules, so that both compile to the same integer operations:

* every integer is explicitly int32 (``I``) or int64 (``L``); two's
  complement wrap-around is relied on only in :func:`xorshift32`;
* no ``x if c else y``, ``not``, ``and``/``or``, ``min``/``max`` on data:
  ``select``, ``NOT``, ``&``/``|``, ``smin``/``smax``;
* ``if`` only on configuration constants (rounding ``mode``, ``spec``): Triton
  gets them as ``constexpr`` (branches removed when compiling), numba as
  loop-invariant values (LLVM unswitches the loop);
* every shift amount lies in ``[0, width)`` whatever the data (clamped with
  ``smin``/``smax``, or masked ``& 31``), including in the branch a
  ``select`` discards, since an out-of-range shift is undefined in LLVM;
* no loops, calls only to the bound names and to each other.

Two arithmetic widths, as on the CPU:

* **narrow** (:func:`product32`, :func:`mac32`, :func:`unpack32`,
  :func:`pack32`): int32 lanes, addends normalised to bit :data:`TOP32` = 29,
  the accumulator kept decoded (sign, significand with its leading one at
  ``TOP32``, exponent of that one) across ``k``, finite chains only: the
  caller hands a tile that meets a NaN, an infinity or an overflow to
* **wide** (:func:`mac64`): int64, normalised to bit 60, packed accumulator
  codes, every rule (NaN, infinities, saturation).

The eager far path and the eager close path share one formula in
:func:`mac32`: the close path is SR_{p,r} of the exact sum, which is the far
path's window rounding with the anchor at the sum's own binade (there ``T``
are the ``r`` guard bits and a carry only reaches the next power of two,
whatever ``B`` is: docs/performance.md has the argument).
"""

from __future__ import annotations

import types

from .layout import C_INF, C_NAN, RN, RZ, SPEC_FN, SPEC_IEEE, SR_EAGER, SR_LAZY

__all__ = ["bind", "bind_all", "BODIES", "CONSTANTS", "TOP32", "NO_EXP32", "TOP64", "NO_EXP64"]

TOP32 = 29  # narrow: bit of the leading one of a normalised addend (sums stay below 2**31)
NO_EXP32 = -(1 << 24)  # narrow: exponent of a zero addend ("-inf"); differences fit int32
TOP64 = 60  # wide: as ref.mac
NO_EXP64 = -(1 << 40)  # wide: as ref.mac
MASK32 = 0xFFFFFFFF

#: The constants the bodies read, by name (each target binds them its own way).
CONSTANTS = dict(TOP32=TOP32, NO_EXP32=NO_EXP32, TOP64=TOP64, NO_EXP64=NO_EXP64, MASK32=MASK32,
                 RN=RN, RZ=RZ, SR_LAZY=SR_LAZY, SR_EAGER=SR_EAGER, SPEC_IEEE=SPEC_IEEE,
                 SPEC_FN=SPEC_FN, C_NAN=C_NAN, C_INF=C_INF)


# ---- the generator ----------------------------------------------------------------------


def xorshift32(x):
    """One xorshift32 (13, 17, 5) step of ``ref.prng.step`` on the int32 bit pattern ``x``."""
    x = I(x ^ I(x << 13))
    x = I(x ^ I(I(x >> 17) & 0x7FFF))  # logical shift of the 32-bit pattern
    return I(x ^ I(x << 5))


def xorshift32_wide(x):
    """The same step on a state held in int64 (``0 <= x < 2**32``), as :mod:`ref.prng`."""
    x = L(x ^ L(L(x << 13) & L(MASK32)))
    x = L(x ^ L(x >> 17))
    return L(x ^ L(L(x << 5) & L(MASK32)))


# ---- narrow: int32, finite chains, decoded accumulator ---------------------------------


def product32(sa, siga, expa, sb, sigb, expb):
    """The exact product of two decoded inputs: sign, significand at bit TOP32, exponent.

    The exponent is that of the leading one. A zero operand is decoded with the
    exponent ``layout.ZERO_EXP`` (``ref.fast.plan``), so a zero product's
    exponent is below ``-2**21``: far below every exponent a value of a
    narrow configuration can have (``|e| < 2**20``), which is all the MAC
    needs of it (as of ``NO_EXP32``).
    """
    ps = I(sa ^ sb)
    psig = I(siga * sigb)
    blp = I(32 - clz32(psig))
    npr = I(psig << (I(TOP32 + 1 - blp) & 31))
    ep = I(expa + expb + blp - 1)
    return ps, npr, ep


def mac32(zs, zn, ze, ps, npr, ep, word, mode, r, extra, man, emin, sub):
    """One MAC on a decoded accumulator: ``(sign, significand, exponent, binade)``.

    ``zs, zn, ze``: the accumulator (sign; significand with its leading one at
    TOP32, 0 for zero; exponent of that one, NO_EXP32 for zero); ``ps, npr,
    ep``: the product (:func:`product32`); ``word``: the MAC's random word;
    ``extra``: the bits below the grid that the rounding looks at,
    ``MacConfig.extra_bits`` (1 for RN, 0 for RZ, ``r`` for lazy SR; eager SR
    rounds its own window). The result is canonical (a function of the
    value), so the next MAC sees what unpacking the packed code would give.
    ``binade``: the exponent of the rounding grid; a result can only overflow
    when it is ``>= emax``, so the caller reruns a tile in which it reached
    ``emax`` in the wide kernel (which owns the overflow rules). That rarely
    costs anything (values in the top binade) and spares the packed magnitude
    and its test in every MAC.
    """
    one_r = I(I(1) << (r & 31))
    rlow = I(one_r - 1)
    # ---- align, jam, add (ref.mac.mac_step; docs/design.md section 6)
    z_big = ze >= ep
    e_big = smax(ze, ep)
    d = select(z_big, I(ze - ep), I(ep - ze))
    big = select(z_big, zn, npr)
    small = select(z_big, npr, zn)
    dsh = I(smin(d, I(31)) & 31)
    q = I(small >> dsh)
    small_j = I(q | smin(I(small - I(q << dsh)), I(1)))  # floor, with the lost bits jammed
    eff_sub = zs != ps
    S = select(eff_sub, I(big - small_j), I(big + small_j))
    neg = S < 0  # only under effective subtraction
    S = select(neg, I(0 - S), S)
    sign = I(select(z_big, zs, ps) ^ select(neg, I(1), I(0)))
    exact_zero = S == 0
    sign = select(exact_zero, I(zs & ps), sign)  # +0 unless both addends are -0
    # ---- the sum with its leading one at bit 30 (Sn), its binade e, the grid binade eg
    lz = clz32(S)
    e = I(e_big - TOP32 + 31 - lz)
    Sn = I(S << (I(lz - 1) & 31))
    eg = smax(e, emin)
    if mode == SR_EAGER:
        # window rounding at the anchor: the far path's anchor, or the sum's own
        # binade on the close path (there it is SR_{p,r}: the lazy result)
        far = NOT(eff_sub & (d <= 1))
        anchor = select(far, smax(select(eff_sub, I(e_big - 1), e_big), emin), eg)
        T = I(Sn >> (smin(I(anchor - e + 30 - man - r), I(31)) & 31))
        Y = I(T + I(word & rlow))
        kk = smax(I(31 - clz32(Y) - man - r), I(0))  # 0, 1 or 2 binades above the anchor
        # B_kk * 2**r from bit 0 of B alone: the result does not depend on bit 1 (kk = 2 only
        # when the carry reached the next power of two: docs/design.md 5.3)
        Bkr = select(kk != 0, I(word & one_r), I(0))
        m = I(I(Y + Bkr) >> (I(r + kk) & 31))
        eg = I(anchor + kk)
    else:
        sh = I(smin(I(eg - e + 30 - man - extra), I(31)) & 31)
        t = I(Sn >> sh)
        if mode == RN:
            kq = I(t >> 1)
            below = I(t << sh) != Sn
            m = I(kq + select(((t & 1) == 1) & (below | ((kq & 1) == 1)), I(1), I(0)))
        elif mode == RZ:
            m = t
        else:
            m = I(I(t + I(word & rlow)) >> (r & 31))
    # ---- the rounded value as the next accumulator (m = 0: rounded to zero, then eg = emin)
    zero = exact_zero | (m == 0) | ((sub == 0) & (e < emin))
    bl = I(32 - clz32(m))
    zn2 = select(zero, I(0), I(m << (I(TOP32 + 1 - bl) & 31)))
    ze2 = select(zero, I(NO_EXP32), I(eg - man + bl - 1))
    return sign, zn2, ze2, eg


def unpack32(zc, W, man, efmax, bias, sub, spec):
    """An accumulator code (int64) as the narrow kernel's ``(sign, significand, exponent, special)``.

    ``special``: the code is a NaN or an infinity (the tile goes to the wide kernel).
    """
    hidden = L(L(1) << man)
    ef = L(L(zc >> man) & efmax)
    mf = L(zc & L(hidden - 1))
    if spec == SPEC_IEEE:
        special = ef == efmax
    elif spec == SPEC_FN:
        magmask = L(L(L(1) << (W - 1)) - 1)
        special = L(zc & magmask) == magmask
    else:
        special = zc < 0  # never: codes are non-negative
    sig = select(ef != 0, L(mf | hidden), select(sub != 0, mf, L(0)))
    bl = L(64 - clz64(sig))
    zs = I(L(zc >> (W - 1)) & 1)
    zn = select(sig != 0, I(L(sig << smax(L(TOP32 + 1 - bl), L(0)))), I(0))
    ze = select(sig != 0, I(smax(ef, L(1)) - bias - man + bl - 1), I(NO_EXP32))
    return zs, zn, ze, special


def pack32(zs, zn, ze, W, man, emin):
    """The code (int64) of a narrow accumulator; its value is on the grid, so shifts are exact."""
    e = L(ze)
    eg = smax(e, L(emin))
    frac = L(L(zn) >> smin(smax(L(TOP32 - man + eg - e), L(0)), L(63)))
    mag = select(zn == 0, L(0), L(L(L(eg - emin) << man) + frac))
    return L(L(L(zs) << (W - 1)) | mag)


# ---- wide: int64, every rule -----------------------------------------------------------


def mac64(zc, sa, siga, expa, ca, sb, sigb, expb, cb, word, mode, r, extra, W, man, efmax, bias,
          sub, spec, emin, maxcode, ovf, infval, nanval):
    """``round(z + a * b)`` on a packed accumulator code ``zc`` (int64): the next code.

    ``a``, ``b`` arrive decoded (sign, significand, exponent, class bits
    ``layout.C_*``); ``word``: the MAC's random word. The configuration
    (``ref.fast.params``): ``extra`` (``MacConfig.extra_bits``), overflow result
    ``ovf`` (``< 0``: the canonical NaN), infinity ``infval`` (``< 0``: NaN),
    NaN code ``nanval``.
    """
    hidden = L(L(1) << man)
    manmask = L(hidden - 1)
    one_r = L(L(1) << r)
    # ---- the exact product (NaN operand, or inf * 0: C_INF == C_ZERO >> 1)
    ca = L(ca)
    cb = L(cb)
    cor = L(ca | cb)
    nan_bits = L(L(cor & C_NAN) | L(L(ca & C_INF) & L(cb >> 1)) | L(L(cb & C_INF) & L(ca >> 1)))
    pnan = nan_bits != 0
    pinf = (L(cor & C_INF) != 0) & (nan_bits == 0)
    ps = L(L(sa) ^ L(sb))
    psig = L(L(siga) * L(sigb))
    pexp = L(L(expa) + L(expb))
    # ---- unpack the accumulator code
    zs = L(L(zc >> (W - 1)) & 1)
    ef = L(L(zc >> man) & efmax)
    mf = L(zc & manmask)
    zsig = select(ef != 0, L(mf | hidden), select(sub != 0, mf, L(0)))
    zexp = L(smax(ef, L(1)) - bias - man)
    if spec == SPEC_IEEE:
        znan = (ef == efmax) & (mf != 0)
        zinf = (ef == efmax) & (mf == 0)
    elif spec == SPEC_FN:
        magmask = L(L(L(1) << (W - 1)) - 1)
        znan = L(zc & magmask) == magmask
        zinf = zc < 0  # never
    else:
        znan = zc < 0
        zinf = zc < 0
    zsig = select(znan | zinf, L(0), zsig)
    # ---- normalise both addends to bit TOP64, align, jam, add
    blz = L(64 - clz64(zsig))
    blp = L(64 - clz64(psig))
    nz = L(zsig << smin(L(TOP64 + 1 - blz), L(63)))
    npr = L(psig << smin(L(TOP64 + 1 - blp), L(63)))
    ez = select(zsig != 0, L(zexp + blz - 1), L(NO_EXP64))
    ep = select(psig != 0, L(pexp + blp - 1), L(NO_EXP64))
    z_big = ez >= ep
    e_big = smax(ez, ep)
    d = select(z_big, L(ez - ep), L(ep - ez))
    big = select(z_big, nz, npr)
    small = select(z_big, npr, nz)
    dsh = smin(d, L(63))
    q = L(small >> dsh)
    small_j = L(q | select(L(q << dsh) != small, L(1), L(0)))
    eff_sub = zs != ps
    S = select(eff_sub, L(big - small_j), L(big + small_j))
    neg = S < 0
    S = select(neg, L(0 - S), S)
    sign = select(neg, select(z_big, ps, zs), select(z_big, zs, ps))
    exact_zero = S == 0
    sign = select(exact_zero, L(zs & ps), sign)  # +0 unless both addends are -0
    lsb = L(e_big - TOP64)
    # ---- round S * 2**lsb on the accumulator grid (ref.rounding.round_to_grid)
    e = L(lsb + 63 - clz64(S))
    eg = smax(e, L(emin))
    s = L(eg - man - extra - lsb)
    sr = smin(smax(s, L(0)), L(63))
    t = L(S >> sr)
    below = L(t << sr) != S
    t = L(t << smin(smax(L(0 - s), L(0)), L(63)))
    R = L(word & L(one_r - 1))
    if mode == RN:
        kq = L(t >> 1)
        m = L(kq + select(((t & 1) == 1) & (below | ((kq & 1) == 1)), L(1), L(0)))
    elif mode == RZ:
        m = t
    else:
        m = L(L(t >> r) + select(L(L(t & L(one_r - 1)) + R) >= one_r, L(1), L(0)))
    if mode == SR_EAGER:
        # far path (contract 3.3); the close path keeps the lazy result
        anchor = smax(select(eff_sub, L(e_big - 1), e_big), L(emin))
        s2 = L(anchor - man - r - lsb)
        T = L(L(S >> smin(smax(s2, L(0)), L(63))) << smin(smax(L(0 - s2), L(0)), L(63)))
        Y = L(T + R)
        kk = smax(L(63 - clz64(Y) - man - r), L(0))  # 0, 1 or 2
        Bk = L(L(word >> r) & L(L(L(1) << kk) - 1))
        far = NOT(eff_sub & (d <= 1))
        m = select(far, L(L(Y + L(Bk << r)) >> L(r + kk)), m)
        eg = select(far, L(anchor + kk), eg)
    # ---- pack (ref.rounding.pack): overflow, flush to zero, signed zero
    mag = L(L(L(eg - emin) << man) + m)
    overflow = (mag > maxcode) & NOT(exact_zero)
    mag = select(((sub == 0) & (e < emin)) | exact_zero, L(0), mag)
    sbit = L(sign << (W - 1))
    ovf_code = select(ovf < 0, L(nanval), L(sbit | ovf))
    code = select(overflow, ovf_code, L(sbit | smin(mag, L(maxcode))))
    # ---- NaN and infinities (ref.rounding.special_codes)
    is_nan = znan | pnan | (zinf & pinf & (zs != ps))
    is_inf = (zinf | pinf) & NOT(is_nan)
    isign = select(zinf, zs, ps)
    inf_code = select(infval < 0, L(nanval), L(L(isign << (W - 1)) | infval))
    code = select(is_inf, inf_code, code)
    return select(is_nan, L(nanval), code)


#: Every body, in an order where each comes after the bodies it calls.
BODIES = (xorshift32, xorshift32_wide, product32, mac32, unpack32, pack32, mac64)


def bind(fn, namespace: dict):
    """A copy of the template ``fn`` whose free names resolve in ``namespace`` (which should
    hold ``__name__``: the copy's ``__module__``, which compilers read)."""
    return types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


def bind_all(namespace: dict, compile_fn) -> dict:
    """Bind every body to ``namespace`` (with :data:`CONSTANTS` added unless present) and
    compile it with ``compile_fn``; the compiled bodies are added to ``namespace`` too
    (so they call each other's compiled form). Returns ``namespace``."""
    for name, value in CONSTANTS.items():
        namespace.setdefault(name, value)
    for fn in BODIES:
        namespace[fn.__name__] = compile_fn(bind(fn, namespace))
    return namespace
