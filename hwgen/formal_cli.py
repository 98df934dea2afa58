"""``srmac prove``: the dual-path MAC loop proven equal to the single-path one.

The proofs themselves are :mod:`hwgen.formal`; this module only registers the
command, and imports Amaranth and the tools when the command runs, so
``srmac --help`` stays fast and works without the ``hw`` extra.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

__all__ = ["register"]

#: The configurations ``srmac prove`` checks by default (the issue's FP8 MAC, all roundings).
DEFAULT_PROOFS = (
    "e5m2:e6m5:rn",
    "e5m2:e6m5:rz",
    "e5m2:e6m5:sr_lazy:4",
    "e5m2:e6m5:sr_eager:4",
    "e5m2:nosub:e6m5:nosub:rn",
    "e5m2:nosub:e6m5:nosub:rz",
    "e5m2:nosub:e6m5:nosub:sr_lazy:4",
    "e5m2:nosub:e6m5:nosub:sr_eager:4",
)
SOLVER_NAMES = ("yices", "boolector", "z3")

# ---- srmac prove -----------------------------------------------------------------

_EPILOG = """\
examples:
  srmac prove                                   # the default set (E5M2 x E5M2 -> E6M5, 8 proofs)
  srmac prove e5m2:e6m5:sr_eager:4 --solver boolector
  srmac prove e4m3:bf16:sr_lazy:8 --timeout 1200 --workdir build/prove
  srmac prove e5m2:e6m5:rn --plant z=0x123,a=0x45,b=0x67   # must report DIFFERENT
"""


def register(sub) -> None:
    p = sub.add_parser(
        "prove",
        help="prove the dual-path MAC loop equal to the single-path one (SymbiYosys)",
        description=textwrap.fill(
            "Formal equivalence check with yowasp-sby: for every accumulator code, input "
            "codes and random word, the dual-path accumulation step (the default hardware) "
            "gives the same result code as the single-path step that the cocotb regression "
            "checks against ref.mac. Exit status 0 when every proof passes, 1 when one fails "
            "or times out.",
            79,
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("specs", nargs="*", help="MAC specs (default: " + ", ".join(DEFAULT_PROOFS) + ")")
    p.add_argument("--solver", default="yices", help=f"smtbmc solver: {', '.join(SOLVER_NAMES)}")
    p.add_argument("--timeout", default="600", help="seconds per proof (default 600)")
    p.add_argument("--workdir", default=None, help="keep the miter and sby files here")
    p.add_argument(
        "--plant",
        default=None,
        metavar="PORT=V,...",
        help="flip the dual result at this input (a negative check: the proof must fail)",
    )
    p.set_defaults(func=_cmd_prove)


def _parse_plant(text):
    if text is None:
        return None
    out = {}
    for tok in text.split(","):
        name, _, value = tok.partition("=")
        try:
            out[name.strip()] = int(value, 0)
        except ValueError:
            raise ValueError(
                f"--plant takes PORT=VALUE pairs, e.g. z=0x123,a=0x45, got {tok!r}"
            ) from None
    return out


def _cmd_prove(args) -> int:
    from hwgen.formal import _solver_ready, prove
    from hwgen.params import DualParams
    from ref.config import parse_mac

    try:
        timeout = int(args.timeout)
    except ValueError:
        raise ValueError(f"--timeout must be whole seconds, got {args.timeout!r}") from None
    specs = args.specs or list(DEFAULT_PROOFS)
    cfgs = [parse_mac(s) for s in specs]  # bad specs: one line before any tool runs
    for cfg in cfgs:
        DualParams(cfg).check()
    _solver_ready(args.solver)
    fault = _parse_plant(args.plant)
    bad = 0
    for cfg in cfgs:
        wd = None
        if args.workdir:
            wd = Path(args.workdir) / cfg.spec().replace(":", "_")
        res = prove(cfg, solver=args.solver, timeout_s=timeout, workdir=wd, fault=fault)
        print(res.line(), flush=True)
        bad += res.status != "pass"
        if res.status in ("fail", "error") and res.workdir:
            print(f"  files: {res.workdir}")
    print(f"{len(cfgs)} proofs, {len(cfgs) - bad} passed, {bad} not passed")
    return 1 if bad else 0
