"""Fault campaign on the board link: random products, one injected fault each, outcomes counted.

Each trial connects :class:`boards.host.Accelerator` to a board fresh from reset
through :class:`boards.sim.FaultyLink`, multiplies random codes (a random
M x K x N product: several output blocks, K split into chunks of KMAX, C0 or
none) and damages one frame (``to_board``) or one reply (``to_host``), chosen at
random among the product's, with one fault class of :data:`boards.sim.FAULTS`.
Outcomes:

* ``recovered``: the codes equal ``ref.array.ArrayModel``'s (whether the host
  had to resend or the board ignored the damage: ``resent`` counts the first);
* ``raised``: :class:`boards.host.BoardError`, a clear error, no codes returned;
* ``silent_wrong``: codes returned that differ from the model's;
* ``hang``: the run went on far longer than a fault-free one (stopped by
  :class:`boards.sim.LinkHang`);
* ``traceback``: any other exception.

The board is :class:`boards.model.BoardModel` (``target="model"``, thousands of
trials a minute) or the RTL in Amaranth's simulator (``target="rtl"``, about a
second a trial); ``tests/test_boards_model.py`` checks that both answer alike.

Command line (``srmac board faults`` or ``python -m boards.faults``)::

    srmac board faults --trials 10080                       # the model, all classes
    srmac board faults --trials 56 --target rtl             # the RTL
    srmac board faults --trials 280 --faults late,stale     # some classes
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ref.array import ArrayModel, tile_plan
from ref.config import MacConfig, parse_mac

from . import protocol as P
from .host import Accelerator, BoardError
from .sim import (
    FAULTS,
    HOST_TIMEOUT_BYTE_TIMES,
    Fault,
    FaultyLink,
    LinkHang,
    ModelTransport,
    SimTransport,
)

__all__ = ["OUTCOMES", "CLASSES", "TrialResult", "command_plan", "run_trial", "campaign",
           "campaign_rows", "markdown", "parse_classes", "report", "main"]

OUTCOMES = ("recovered", "raised", "silent_wrong", "hang", "traceback")
#: Every (direction, fault class) pair the campaign injects.
CLASSES = [(d, k) for d in ("to_board", "to_host") for k, (dirs, _) in FAULTS.items() if d in dirs]
#: Replies that carry a payload (the only ones a short payload can hit).
_WITH_PAYLOAD = (P.IDENT, P.READ_C)


@dataclass(frozen=True)
class TrialResult:
    direction: str
    kind: str
    outcome: str
    resent: bool
    detail: str  # the damaged frame or reply, and the error for raised / traceback


def command_plan(M: int, K: int, N: int, rows: int, cols: int, kmax: int) -> list[int]:
    """The commands :meth:`Accelerator.matmul` sends for an M x K x N product, IDENT first."""
    cmds = [P.IDENT]
    A, B = np.zeros((M, K), np.int64), np.zeros((K, N), np.int64)
    first = True
    for *_, Ct in tile_plan(A, B, None, rows, cols, kmax):
        if Ct is not None:
            cmds += ([] if first else [P.READ_C]) + [P.LOAD_C]
            first = False
        cmds += [P.LOAD_A, P.LOAD_B, P.RUN]
    return cmds + [P.READ_C]


def _targets(kind: str, cmds: list[int]) -> list[int]:
    """The frames or replies ``kind`` can damage (a stale copy needs an earlier reply)."""
    if kind == "short_payload":
        return [i for i, c in enumerate(cmds) if c in _WITH_PAYLOAD]
    return list(range(1 if kind == "stale" else 0, len(cmds)))


def _traffic(cmds, rows, cols, kmax, K) -> int:
    """Bytes of a fault-free run (frames and replies), a bound for the hang watchdog."""
    over = 2 * (P.HEADER_BYTES + P.CRC_BYTES)
    per = {P.LOAD_A: rows * kmax, P.LOAD_B: cols * kmax, P.LOAD_C: 2 * rows * cols,
           P.READ_C: 2 * rows * cols, P.IDENT: P.IDENT_LENGTH}
    return sum(over + per.get(c, 0) for c in cmds)


def run_trial(cfg: MacConfig, rows: int, cols: int, kmax: int, direction: str, kind: str,
              seed: int, *, target: str = "model") -> TrialResult:
    """One trial (reproducible from its arguments)."""
    rng = random.Random(seed)
    grow = 2 if target == "model" else 1  # products of up to 3 x 3 blocks (RTL: 2 x 2)
    M, K, N = (rng.randint(1, grow * n + 1) for n in (rows, kmax, cols))
    nprng = np.random.default_rng(seed)
    A = nprng.integers(0, 1 << cfg.in_fmt.width, (M, K))
    B = nprng.integers(0, 1 << cfg.in_fmt.width, (K, N))
    C0 = nprng.integers(0, 1 << cfg.acc_fmt.width, (M, N)) if rng.random() < 0.75 else None
    pe_seed = rng.randrange(1 << 32)
    cmds = command_plan(M, K, N, rows, cols, kmax)
    fault = Fault(kind, direction, rng.choice(_targets(kind, cmds)), seed=rng.randrange(1 << 32))
    budget = 4 * _traffic(cmds, rows, cols, kmax, K) + 60 * HOST_TIMEOUT_BYTE_TIMES
    if target == "model":
        from .model import BoardModel

        inner = ModelTransport(BoardModel(cfg, rows, cols, seed=pe_seed, kmax=kmax), budget=budget)
    elif target == "rtl":
        from .core import BoardTop

        top = BoardTop(cfg, rows, cols, seed=pe_seed, kmax=kmax, divisor=4)
        inner = SimTransport(top, budget_cycles=budget * 10 * top.divisor)
    else:
        raise ValueError(f"target must be 'model' or 'rtl', got {target!r}")
    link = FaultyLink(inner, fault)
    acc = None
    try:
        acc = Accelerator(link)
        got = acc.matmul(A, B, C0)
    except LinkHang as exc:
        outcome, why = "hang", str(exc)
    except BoardError as exc:
        outcome, why = "raised", str(exc)
    except Exception as exc:  # noqa: BLE001 - a traceback is an outcome to count
        outcome, why = "traceback", f"{type(exc).__name__}: {exc}"
    else:
        want = ArrayModel(cfg, rows, cols, pe_seed, backend="reference").matmul(A, B, C0,
                                                                                k_tile=kmax)
        bad = int((got != want).sum())
        outcome, why = ("recovered", "") if not bad else ("silent_wrong", f"{bad} codes differ")
    resent = acc is not None and (acc.resends + acc.reloads) > 0
    detail = f"seed {seed}: {M}x{K}x{N}, {link.hit or 'fault not reached'}" + (f": {why}" if why else "")
    return TrialResult(direction, kind, outcome, resent, detail)


def campaign(trials: int, *, cfg: MacConfig | None = None, rows: int = 2, cols: int = 2,
             kmax: int = 4, classes=None, seed: int = 0, target: str = "model",
             progress: bool | None = None) -> list[TrialResult]:
    """``trials`` trials spread evenly over ``classes`` (default :data:`CLASSES`)."""
    cfg = cfg or parse_mac("e5m2:e6m5:sr_eager:4")
    classes = list(classes or CLASSES)
    from tqdm import tqdm

    disable = {True: False, False: True}.get(progress)  # None: only on a terminal
    out = []
    for t in tqdm(range(trials), desc=f"fault campaign ({target})", unit="trial",
                  disable=disable, leave=False):
        direction, kind = classes[t % len(classes)]
        out.append(run_trial(cfg, rows, cols, kmax, direction, kind, seed * 1_000_003 + t,
                             target=target))
    return out


def campaign_rows(results: list[TrialResult]) -> list[dict]:
    """One row per class: trials, each outcome, resent; then a total row."""
    rows = []
    keys = list(dict.fromkeys((r.direction, r.kind) for r in results))
    for key in keys + [None]:
        sel = [r for r in results if key is None or (r.direction, r.kind) == key]
        n = Counter(r.outcome for r in sel)
        rows.append({"direction": key[0] if key else "all", "fault": key[1] if key else "",
                     "trials": len(sel), **{o: n[o] for o in OUTCOMES},
                     "resent": sum(r.resent for r in sel)})
    return rows


def markdown(results: list[TrialResult]) -> str:
    from ref.outputs import markdown_table

    cols = ["direction", "fault", "trials", *OUTCOMES, "resent"]
    heads = ["direction", "fault", "trials", "recovered", "raised", "silent wrong", "hang",
             "traceback", "host resent"]
    return markdown_table(campaign_rows(results), cols, heads, align="llrrrrrrr")


def parse_classes(text: str | None) -> list[tuple[str, str]]:
    """The (direction, class) pairs named in ``text`` (comma-separated classes; None: all)."""
    if not text:
        return list(CLASSES)
    names = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if f not in FAULTS]
    if unknown or not names:
        raise ValueError(f"unknown fault class {unknown[0] if unknown else text!r}: choose "
                         f"from {', '.join(FAULTS)}")
    return [c for c in CLASSES if c[1] in names]


def report(cfg: MacConfig, rows: int, cols: int, kmax: int, trials: int, *, target: str = "model",
           classes=None, seed: int = 0, show: int = 5) -> int:
    """Run a campaign, print its table and up to ``show`` trials that did not recover.
    Exit status: 0, or 1 when a trial was silently wrong, hung or raised a traceback."""
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(f"--trials must be an integer >= 1, got {trials!r}")
    from .core import BoardCore

    BoardCore.validate(cfg, rows, cols, kmax=kmax, timeout=16)
    results = campaign(trials, cfg=cfg, rows=rows, cols=cols, kmax=kmax, classes=classes,
                       seed=seed, target=target)
    print(markdown(results))
    for r in [r for r in results if r.outcome != "recovered"][:show]:
        print(f"{r.outcome}: {r.direction} {r.kind}, {r.detail}")
    return 1 if any(r.outcome in ("silent_wrong", "hang", "traceback") for r in results) else 0


def main(argv=None) -> int:
    from hwgen.array_export import parse_shape

    ap = argparse.ArgumentParser(
        prog="python -m boards.faults",
        description="Inject one link fault per trial into a random product on the simulated "
                    "board; count recovered / raised / silent wrong / hang / traceback per "
                    "fault class.",
        epilog="example: python -m boards.faults --trials 10000   "
               "(the RTL: --target rtl --trials 56, about a second a trial); "
               "the same as `srmac board faults`")
    ap.add_argument("--trials", type=int, default=560, help="trials in all (default 560)")
    ap.add_argument("--target", choices=("model", "rtl"), default="model",
                    help="the board: its Python twin (default) or the RTL in simulation")
    ap.add_argument("--mac", default="e5m2:e6m5:sr_eager:4", help="MAC spec (default e5m2:e6m5:sr_eager:4)")
    ap.add_argument("--array", default="2x2", help="array ROWSxCOLS (default 2x2)")
    ap.add_argument("--kmax", type=int, default=4, help="K per RUN (default 4: several chunks)")
    ap.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    ap.add_argument("--faults", default=None,
                    help="comma-separated classes, e.g. bitflip,late (default: all)")
    ap.add_argument("--show", type=int, default=5,
                    help="list up to this many trials that did not recover (default 5)")
    args = ap.parse_args(argv)
    try:
        cfg = parse_mac(args.mac)
        rows, cols = parse_shape(args.array)
        return report(cfg, rows, cols, args.kmax, args.trials, target=args.target,
                      classes=parse_classes(args.faults), seed=args.seed, show=args.show)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
