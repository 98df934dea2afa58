"""Sub-commands of the golden model: ``quantize``, ``mac``, ``rbits``, ``demo``.

Each verb has a ``_register_<verb>(sub)`` that adds its parser and returns
it, and a ``_cmd_<verb>(args)``
that returns an exit code. User errors raise ``ValueError`` with a one-line
message; :mod:`ref.cli` prints it and exits with status 2. Numbers on the
command line are parsed here, not by argparse, so that a bad number is also a
one-line error.

Output is plain aligned text (no colour, no dependency) so that it can be
pasted into docs and parsed by scripts.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from fractions import Fraction

import numpy as np

from . import demo
from .analysis import add_sweep_arguments, run_sweep
from .backend import NumpyOps
from .cli import add_mac_arguments, mac_from_args, parse_int, parse_value, table
from .codec import decode, encode, random_bits
from .config import MAX_RBITS, Rounding, required_rbits
from .formats import parse_format
from .mac import mac

__all__ = ["register", "parse_value", "parse_int", "format_code_bits", "describe_format", "table"]

#: SR distributions are enumerated exactly up to this many random-word bits.
MAX_ENUM_BITS = 20


def register(sub) -> None:
    """Add the golden-model verbs to the ``srmac`` sub-parsers."""
    _register_quantize(sub)
    _register_mac(sub)
    _register_rbits(sub)
    _register_demo(sub)


# ---- shared helpers ---------------------------------------------------------

def _parser(sub, name, help_, description, epilog):
    # Raw formatting keeps the epilog's examples; the description is wrapped here.
    return sub.add_parser(
        name,
        help=help_,
        description=textwrap.fill(description, 79),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def format_code_bits(code: int, fmt) -> tuple[str, str]:
    """``("0x3a", "0|0111|010")``: a code in hex and as sign|exponent|mantissa bits."""
    digits = (fmt.width + 3) // 4
    sign = code >> (fmt.width - 1)
    exp = (code >> fmt.man_bits) & fmt.exp_field_max
    man = code & fmt.man_mask
    man_s = f"{man:0{fmt.man_bits}b}" if fmt.man_bits else ""
    return f"0x{code:0{digits}x}", f"{sign}|{exp:0{fmt.exp_bits}b}|{man_s}"


def describe_format(fmt) -> str:
    """One line: name, field widths, bias and the options that change rounding results."""
    opts = [f"specials {fmt.specials}"]
    if fmt.saturate:
        opts.append("saturating")
    if not fmt.subnormals:
        opts.append("no subnormals")
    return (f"{fmt.name}: {fmt.width} bits (1|{fmt.exp_bits}|{fmt.man_bits}), bias {fmt.bias}, "
            + ", ".join(opts))


def _fmt_float(x: float) -> str:
    """Shortest repr that reads back to the same float64 (exact for every srmac value)."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


def _ulp(x: Fraction, fmt) -> Fraction:
    """Grid spacing of ``fmt`` at the exact value ``x`` (subnormal spacing below 2**emin)."""
    ax = abs(x)
    e = fmt.emin
    if ax >= Fraction(2) ** fmt.emin:
        # floor(log2(ax)) from the bit lengths, corrected by one comparison.
        e = ax.numerator.bit_length() - ax.denominator.bit_length()
        if Fraction(2) ** e > ax:
            e -= 1
    return Fraction(2) ** (e - fmt.man_bits)


def _decode1(code: int, fmt) -> float:
    return float(decode(code, fmt))


# ---- quantize ------------------------------------------------------------------

_QUANTIZE_EPILOG = """\
examples:
  srmac quantize --fmt e4m3 1.3 2.7 448 500
  srmac quantize --fmt e5m2 --rounding rz -- -0.3 -inf
  srmac quantize --fmt e4m3 --rounding sr --rbits 4 --seed 1 --samples 100000 1.3 2.7

SR_{p,r} rounds |x| away from zero iff floor(f * 2**r) + R >= 2**r, where f is
the fraction of |x| beyond the lower neighbour, in ulps, and R a uniform r-bit
word: P(up) = floor(f * 2**r) / 2**r, which is below f by less than 2**-r.
Negative values like -1.5 work anywhere; put -2e-3, -inf or -nan after `--`.
"""


def _register_quantize(sub):
    p = _parser(
        sub, "quantize", "round values to a format and show their codes",
        "Round real values to a floating-point format (rn, rz or SR with r random "
        "bits) and print each value's code in hex and as sign|exponent|mantissa "
        "bits. With --rounding sr and --samples N, also compare the measured "
        "probability of rounding up (away from zero) with the exact one.",
        _QUANTIZE_EPILOG,
    )
    p.add_argument("values", nargs="+", metavar="VALUE",
                   help="real values: 1.3, -2e-3, 0x1.8p1 (hex float), inf, nan")
    p.add_argument("--fmt", default="e4m3",
                   help="target format: e5m2, e4m3, e6m5, fp16, bf16, fp32, e<E>m<M>, "
                        "with options like e6m5:nosub:sat (default: e4m3)")
    p.add_argument("--rounding", default="rn", choices=("rn", "rz", "sr"),
                   help="rounding mode (default: rn)")
    p.add_argument("--rbits", metavar="R", help="random bits r for --rounding sr (1..30)")
    p.add_argument("--seed", metavar="S", default="0",
                   help="base seed of the project PRNG for SR draws (default: 0)")
    p.add_argument("--samples", metavar="N",
                   help="SR only: draw N roundings of each value and compare P(up) with "
                        "the exact value")
    p.set_defaults(func=_cmd_quantize)
    return p


def _sr_neighbours(x: float, fmt):
    """(down, up, f): the two SR candidates of |x| (exact magnitudes) and the fraction f in ulps."""
    ax = abs(Fraction(x))
    ulp = _ulp(ax, fmt)
    k = ax // ulp
    return k * ulp, (k + 1) * ulp, ax / ulp - k


def _cmd_quantize(args) -> int:
    fmt = parse_format(args.fmt)
    values = [parse_value(v) for v in args.values]
    seed = parse_int(args.seed, "--seed", 0)
    rbits = parse_int(args.rbits, "--rbits", 1, MAX_RBITS)
    samples = parse_int(args.samples, "--samples", 1, 10**7)
    if args.rounding == "sr" and rbits is None:
        raise ValueError(f"--rounding sr needs --rbits R (1..{MAX_RBITS})")
    if args.rounding != "sr" and rbits is not None:
        raise ValueError(f"--rbits {rbits} is only meaningful with --rounding sr")
    if args.rounding != "sr" and samples is not None:
        raise ValueError("--samples needs --rounding sr (rn and rz are deterministic)")

    kw = dict(rbits=rbits, seed=seed) if args.rounding == "sr" else {}
    codes = encode(np.array(values), fmt, args.rounding, **kw)
    rounded = decode(codes, fmt)
    head = f"{describe_format(fmt)}; rounding {args.rounding}"
    if args.rounding == "sr":
        head += f", r = {rbits}, seed {seed}"
    print(head)
    rows = []
    for text, c, y in zip(args.values, codes.tolist(), rounded.tolist(), strict=True):
        hx, bits = format_code_bits(c, fmt)
        rows.append([text, hx, bits, _fmt_float(y)])
    print(table(["value", "code", "sign|exp|man", "rounded"], rows))

    if samples is not None:
        print()
        print(f"SR distribution over {samples} draws per value (up = away from zero; "
              f"exact P(up) = floor(f * 2**{rbits}) / 2**{rbits}, f = fraction in ulps):")
        rows = []
        for text, x in zip(args.values, values, strict=True):
            rows.append(_sr_sample_row(text, x, fmt, rbits, seed, samples))
        print(table(["value", "down", "up", "f", "P(up) exact", "P(up) measured", "+-1 sd"], rows))
    return 0


def _sr_sample_row(text, x, fmt, rbits, seed, samples):
    if not math.isfinite(x):
        return [text, "-", "-", "-", "-", "-", "-"]
    down, up, f = _sr_neighbours(x, fmt)
    sgn = -1 if math.copysign(1.0, x) < 0 else 1
    # The neighbours' codes, with the format's overflow / flush rules (RZ and
    # RN of exactly representable grid points apply them like SR would).
    c_down = int(encode(sgn * float(down), fmt, "rz"))
    c_up = int(encode(sgn * float(up), fmt, "rn"))
    if not fmt.subnormals and abs(x) < fmt.min_normal:
        c_up = c_down = int(encode(x, fmt, "rz"))  # flushed whatever the random bits
    if c_up == c_down:  # flushed or saturated: both neighbours give one code
        same = f"1 code ({format_code_bits(c_up, fmt)[0]})"
        return [text, same, same, f"{float(f):.6g}", "-", "-", "-"]
    p_exact = Fraction(math.floor(f * 2**rbits), 2**rbits)
    draws = encode(np.full(samples, x), fmt, "sr", rbits=rbits, seed=seed)
    n_up = int(np.count_nonzero(draws == c_up))
    n_other = int(np.count_nonzero((draws != c_up) & (draws != c_down)))
    if n_other:
        raise RuntimeError(f"internal: {n_other} SR draws of {text} hit neither neighbour")
    p_meas = n_up / samples
    sd = math.sqrt(float(p_exact) * (1 - float(p_exact)) / samples)
    return [
        text,
        f"{_fmt_float(_decode1(c_down, fmt))} ({format_code_bits(c_down, fmt)[0]})",
        f"{_fmt_float(_decode1(c_up, fmt))} ({format_code_bits(c_up, fmt)[0]})",
        f"{float(f):.6g}",
        f"{p_exact.numerator}/{p_exact.denominator} = {float(p_exact):.6g}",
        f"{p_meas:.6g}",
        f"{sd:.2g}",
    ]


# ---- mac -----------------------------------------------------------------------

_MAC_EPILOG = """\
examples:
  srmac mac --in e5m2 --acc e6m5 --rbits 4 --z 16 --a 1.75 --b 0.3125
  srmac mac --in e5m2 --acc e6m5 --rbits 4 --codes 0x460,0x3f,0x35 --rand 0x2b
  srmac mac --in e4m3 --acc fp16 --rbits 8 --z 1000 --a -0.875 --b 0.0625

For the SR modes the table lists every outcome over all 2**rand_bits random
words (rand_bits = r for sr_lazy, r + 2 for sr_eager): its probability, the
expected result and its bias against the exact sum, in ulps of the exact sum.
--rand W applies one random word as the hardware does: sr_lazy uses its low r
bits (R), sr_eager also the next 2 bits (B). Write values that argparse would
take for options with '=': --b=-inf, --z=-2e-3.
"""


def _register_mac(sub):
    p = _parser(
        sub, "mac", "one MAC z + a*b in all four rounding modes",
        "Compute one fused MAC z' = round(z + a*b) with a, b in the input format and "
        "z in the accumulator format, in all four modes side by side (rn, rz, "
        "sr_lazy, sr_eager), against the exact value.",
        _MAC_EPILOG,
    )
    add_mac_arguments(p, spec=False, rounding=False)  # all four roundings are shown
    p.add_argument("--z", metavar="Z",
                   help="accumulator value (default: 0); must be exact in --acc")
    p.add_argument("--a", metavar="A", help="multiplier value; must be exact in --in")
    p.add_argument("--b", metavar="B", help="multiplicand value; must be exact in --in")
    p.add_argument("--codes", metavar="Z,A,B",
                   help="the operands as codes instead of values, e.g. 0x460,0x3f,0x35")
    p.add_argument("--rand", metavar="W", help="also apply this one random word to the SR modes")
    p.set_defaults(func=_cmd_mac)
    return p


def _exact_code(text: str, fmt, flag: str) -> int:
    """The code of a value given on the command line, which must be representable."""
    x = parse_value(text, flag)
    if math.isnan(x) and not fmt.has_nan:
        raise ValueError(f"{flag} {text}: {fmt.name} has no NaN")
    code = int(encode(x, fmt, "rn"))
    y = _decode1(code, fmt)
    same = (math.isnan(x) and math.isnan(y)) or (
        x == y and math.copysign(1, x) == math.copysign(1, y))
    if not same:
        raise ValueError(
            f"{flag} {text} is not a value of {fmt.name} (nearest: {_fmt_float(y)} = "
            f"{format_code_bits(code, fmt)[0]}); give a representable value or use --codes"
        )
    return code


def _mac_operands(args, cfg) -> tuple[int, int, int]:
    if args.codes is not None:
        if any(v is not None for v in (args.z, args.a, args.b)):
            raise ValueError("give either --codes Z,A,B or --z/--a/--b values, not both")
        parts = args.codes.split(",")
        if len(parts) != 3:
            raise ValueError(
                f"--codes {args.codes!r}: expected three codes Z,A,B, e.g. 0x460,0x3f,0x35")
        z = parse_int(parts[0], "z code", 0, cfg.acc_fmt.num_codes - 1)
        a = parse_int(parts[1], "a code", 0, cfg.in_fmt.num_codes - 1)
        b = parse_int(parts[2], "b code", 0, cfg.in_fmt.num_codes - 1)
        return z, a, b
    if args.a is None or args.b is None:
        raise ValueError("give the operands: --a A --b B [--z Z] (values) or --codes Z,A,B")
    z = 0 if args.z is None else _exact_code(args.z, cfg.acc_fmt, "--z")
    return z, _exact_code(args.a, cfg.in_fmt, "--a"), _exact_code(args.b, cfg.in_fmt, "--b")


def _mac_distribution(z, a, b, cfg):
    """{result code: count} over all (or, above MAX_ENUM_BITS, 2**20 sampled) random words."""
    bits = cfg.rand_bits
    if bits <= MAX_ENUM_BITS:
        words, sampled = np.arange(1 << bits, dtype=np.int64), False
    else:
        words, sampled = random_bits(NumpyOps(), (1 << MAX_ENUM_BITS,), bits, seed=0), True
    out = mac(np.full(words.shape, z), a, b, cfg, rand=words)
    codes, counts = np.unique(out, return_counts=True)
    return dict(zip(codes.tolist(), counts.tolist(), strict=True)), sampled


def _cmd_mac(args) -> int:
    chosen = mac_from_args(args)
    rbits = chosen.rbits
    cfgs = {m.value: chosen.replace(rounding=m, rbits=rbits) for m in Rounding}
    base = cfgs["rn"]
    inp, acc = base.in_fmt, base.acc_fmt
    z, a, b = _mac_operands(args, base)
    word = parse_int(args.rand, "--rand", 0, (1 << 32) - 1)

    vz, va, vb = _decode1(z, acc), _decode1(a, inp), _decode1(b, inp)
    print(f"MAC z + a*b: {inp.name} x {inp.name} -> {acc.name}, r = {rbits}")
    print(table(["", "value", "code", "sign|exp|man"], [
        ["z", _fmt_float(vz), *format_code_bits(z, acc)],
        ["a", _fmt_float(va), *format_code_bits(a, inp)],
        ["b", _fmt_float(vb), *format_code_bits(b, inp)],
    ], indent="  "))
    finite = all(math.isfinite(v) for v in (vz, va, vb))
    exact = Fraction(vz) + Fraction(va) * Fraction(vb) if finite else None
    if exact is None:
        print("  exact z + a*b: not finite (IEEE special-value rules apply)")
        ulp = None
    else:
        ulp = _ulp(exact, acc)
        print(f"  exact z + a*b = {_fmt_exact(exact)}  "
              f"(ulp of {acc.name} there: {_fmt_exact(ulp)})")
    print()

    rows = []
    for mode, cfg in cfgs.items():
        if cfg.is_sr:
            dist, sampled = _mac_distribution(z, a, b, cfg)
        else:
            dist, sampled = {int(_mac_one(z, a, b, cfg, None)): 1}, False
        rows.extend(_mac_rows(mode, cfg, dist, sampled, exact, ulp))
    heads = ["mode", "rand bits", "outcome", "code", "value", "P", "E[result]", "bias (ulp)"]
    print(table(heads, rows))

    if word is not None:
        print()
        print(f"with random word W = 0x{word:x} (masked to each mode's rand bits):")
        rows = []
        for mode in ("sr_lazy", "sr_eager"):
            cfg = cfgs[mode]
            w = word & ((1 << cfg.rand_bits) - 1)
            R, B = w & ((1 << rbits) - 1), w >> rbits
            code = int(_mac_one(z, a, b, cfg, w))
            rows.append([mode, f"0x{w:x}", f"{R:0{rbits}b}",
                         f"{B:02b}" if mode == "sr_eager" else "-",
                         format_code_bits(code, acc)[0], _fmt_float(_decode1(code, acc))])
        print(table(["mode", "word", "R", "B", "code", "value"], rows))
    return 0


def _mac_one(z, a, b, cfg, word):
    rand = None if word is None else np.int64(word)
    return mac(np.int64(z), np.int64(a), np.int64(b), cfg, rand=rand)


def _fmt_exact(x: Fraction) -> str:
    """A dyadic rational in decimal: exact (finite expansion), shortened when long."""
    f = float(x)
    if Fraction(f) == x:
        return _fmt_float(f)
    return f"{f!r} (approx.)"


def _mac_rows(mode, cfg, dist, sampled, exact, ulp):
    """Table rows of one mode: one per outcome, sorted by value; E and bias on the first."""
    acc = cfg.acc_fmt
    total = sum(dist.values())
    vals = {c: _decode1(c, acc) for c in dist}
    mean = None
    if exact is not None and all(math.isfinite(v) for v in vals.values()):
        mean = sum(Fraction(vals[c]) * n for c, n in dist.items()) / total
    rows = []
    for i, (c, n) in enumerate(sorted(dist.items(), key=lambda cn: vals[cn[0]])):
        v = vals[c]
        if exact is None or not math.isfinite(v):
            outcome = "special"
        else:
            fv = Fraction(v)
            outcome = "exact" if fv == exact else ("below" if fv < exact else "above")
        p = "1" if n == total else f"{n}/{total}" + (" (sampled)" if sampled else "")
        first = i == 0
        rows.append([
            mode if first else "",
            (str(cfg.rand_bits) if cfg.is_sr else "-") if first else "",
            outcome,
            format_code_bits(c, acc)[0],
            _fmt_float(v),
            p,
            _fmt_exact(mean) if first and mean is not None else "",
            f"{float((mean - exact) / ulp):+.4g}" if first and mean is not None else "",
        ])
    return rows


# ---- rbits ---------------------------------------------------------------------

_RBITS_EPILOG = """\
examples:
  srmac rbits --n 4096            # prints 6
  srmac rbits --n 4096 --explain
  srmac rbits --sweep --in e5m2 --acc e6m5            # measure the knee (CSV + plots)
  srmac rbits --sweep --quick --out /tmp/rbits        # seconds

r = ceil(log2(n) / 2), computed exactly as the smallest r >= 1 with 4**r >= n
(El Arar, Fasi, Filip, Mikaitis, arXiv 2408.03069).
"""


def _register_rbits(sub):
    p = _parser(
        sub, "rbits", "random bits needed for SR in a chain of length n",
        "Print the number of random bits r that SR needs in a dot product (MAC "
        "chain) of length n: r = ceil(log2(n)/2). The first output line is the "
        "number alone, for scripts.",
        _RBITS_EPILOG,
    )
    # One of the chain-length inputs is required; a later `--sweep` joins this group
    # and `_cmd_rbits` dispatches on which one is set.
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--n", metavar="N", help="chain length (number of MACs), >= 1")
    p.add_argument("--explain", action="store_true", help="add a line explaining the rule")

    add_sweep_arguments(p, sweep_group=target)
    p.set_defaults(func=_cmd_rbits)
    return p


#: Options of ``rbits --sweep`` (flag, dest), refused with ``--n``.
_SWEEP_ONLY = (("--in", "in_fmt"), ("--acc", "acc_fmt"), ("--n-min", "n_min"),
               ("--n-max", "n_max"), ("--rmax", "rmax"), ("--runs", "runs"), ("--dist", "dist"),
               ("--tol", "tol"), ("--out", "sweep_out"), ("--seed", "seed"), ("--quick", "quick"))


def _cmd_rbits(args) -> int:
    sweep_opts = [flag for flag, dest in _SWEEP_ONLY if getattr(args, dest) not in (None, False)]
    if args.sweep:
        if args.explain:
            raise ValueError("--explain explains --n N; --sweep prints its own table: drop one")

        return run_sweep(args)
    if sweep_opts:
        raise ValueError(f"{sweep_opts[0]} is a --sweep option: add --sweep, or drop it "
                         f"(rbits --n N only prints r)")
    n = parse_int(args.n, "--n", 1)
    r = required_rbits(n)
    print(r)
    if args.explain:
        print(f"r = ceil(log2({n}) / 2) = {r}, the smallest r >= 1 with 4**r >= {n} "
              "(El Arar et al., arXiv 2408.03069)")
    return 0


# ---- demo ----------------------------------------------------------------------

_DEMO_EPILOG = """\
examples:
  srmac demo                       # full run; writes build/demo/demo.{csv,png}
  srmac demo --quick --out /tmp/d  # seconds: n = 16..128, one seed
  srmac demo --backend reference   # the readable reference loop (~40 s CPU)

Each chain z <- round(z + a_k * b_k) runs in E5M2 x E5M2 -> E6M5 with
ref.matmul; the error is |computed - exact| / sum_k |a_k * b_k|
(the relative error for positive data), against the exact integer-scaled sum.
"""


def _register_demo(sub):
    p = _parser(
        sub, "demo", "error of RN, RZ and SR in long low-precision dot products",
        "Run long dot products in E5M2 x E5M2 -> E6M5 for n = 16 .. 4096 with RN, "
        "RZ, sr_lazy and sr_eager (r = 4 and r = required_rbits(n)), print the "
        "mean error table and write demo.csv and demo.png.",
        _DEMO_EPILOG,
    )
    p.add_argument("--out", default="build/demo", help="output folder (default: build/demo)")
    p.add_argument("--quick", action="store_true", help="small run for tests (seconds)")
    p.add_argument("--seeds", metavar="K", help="number of seeds (default: 3, or 1 with --quick)")
    p.add_argument("--backend", choices=("auto", "reference"), default="auto",
                   help="ref.matmul path: auto (its default dispatch) or reference (the "
                        "readable loop over k, slower); the results are identical")
    p.set_defaults(func=_cmd_demo)
    return p


def _cmd_demo(args) -> int:
    seeds = parse_int(args.seeds, "--seeds", 1, 100)
    result = demo.run(args.out, quick=args.quick, seeds=seeds, backend=args.backend)
    print(result.report)
    print(f"\nwrote {result.csv_path} and {result.png_path}")
    return 0
