"""Verilog export of a :class:`hwgen.array.SystolicArray` with its JSON sidecar.

Entry point for ``srmac verilog --array RxC``: :func:`export_array` returns the
module name, the Verilog text and the sidecar dict (same conventions as
:mod:`hwgen.export` for the single MAC: deterministic text, no source paths).
"""

from __future__ import annotations

import re

from amaranth.back import verilog

from ref.config import MacConfig

from .array import SystolicArray, drain_cycles
from .export import SIDECAR_VERSION, _check_name, default_module_name

__all__ = ["parse_shape", "build_array", "array_module_name", "array_to_verilog",
           "array_sidecar", "export_array"]

_SHAPE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_shape(text: str) -> tuple[int, int]:
    """``"4x4"`` -> ``(4, 4)`` (rows, cols)."""
    m = _SHAPE.match(str(text))
    if not m:
        raise ValueError(f"array shape {text!r} not understood: write ROWSxCOLS, e.g. 4x4")
    return int(m.group(1)), int(m.group(2))


def build_array(cfg: MacConfig, rows: int, cols: int, seed: int = 0, pipeline: int = 0,
                interleave: int = 1):
    """The :class:`SystolicArray` (ValueError on a bad shape, seed or configuration)."""
    return SystolicArray(cfg, rows, cols, seed=seed, pipeline=pipeline, interleave=interleave)


def array_module_name(arr: SystolicArray) -> str:
    # default_module_name reads only .cfg
    chains = f"_x{arr.interleave}" if arr.interleave > 1 else ""
    return f"{default_module_name(arr)}_array{arr.rows}x{arr.cols}{chains}"


def array_to_verilog(arr: SystolicArray, name: str) -> str:
    if not isinstance(arr, SystolicArray):
        raise ValueError(f"array_to_verilog needs a hwgen.array.SystolicArray, got {type(arr).__name__}")
    text = verilog.convert(arr, name=_check_name(name), emit_src=False)
    return re.sub(r"\(\*\s*src\s*=\s*\"[^\"]*\"\s*\*\)\s*", "", text)


def _lanes(prefix, field_lsb, width, n):
    return [{"lane": q, "bits": [field_lsb + (q + 1) * width - 1, field_lsb + q * width]}
            for q in range(n)]


def array_sidecar(arr: SystolicArray, name: str) -> dict:
    """JSON-ready description: ports (flattened streams), lane bit positions, protocol, PRNGs."""
    cfg, C, L = arr.cfg, arr.cols, arr.interleave
    R = arr.tile_rows  # the rows of a tile (R * interleave)
    wi, wa = cfg.in_fmt.width, cfg.acc_fmt.width
    drain = drain_cycles(arr.rows, C, arr.pipeline, L)

    def stream(sname, direction, lanes, w, last, doc):
        pw = lanes * w + (1 if last else 0)
        inward = direction == "in"
        fields = {"data": _lanes(sname, 0, w, lanes)}
        if last:
            fields["last"] = {"bits": [lanes * w, lanes * w]}
        return {
            "stream": sname,
            "doc": doc,
            "ports": [
                {"name": f"{sname}__payload", "dir": "in" if inward else "out", "width": pw},
                {"name": f"{sname}__valid", "dir": "in" if inward else "out", "width": 1},
                {"name": f"{sname}__ready", "dir": "out" if inward else "in", "width": 1},
            ],
            "payload": fields,
        }

    streams = [
        stream("a", "in", R, wi, True,
               "one beat per k: lane i = A[i, k] (in_fmt code); last marks k = K-1"),
        stream("b", "in", C, wi, False, "one beat per k: lane j = B[k, j] (in_fmt code)"),
        stream("c_in", "in", C, wa, False,
               "R beats before each tile: beat i, lane j = initial accumulator C0[i, j]"),
        stream("c_out", "out", C, wa, True,
               "R beats after each tile: beat i, lane j = result Z[i, j]; last on beat R-1"),
    ]
    r = cfg.rbits or 0
    layout = ({"R": [r - 1, 0]} if cfg.rounding == "sr_lazy"
              else {"R": [r - 1, 0], "B": [r + 1, r]} if cfg.rounding == "sr_eager" else {})
    gen = None
    if cfg.rand_bits:
        gen = {
            "kind": "xorshift32 (13, 17, 5), one per PE",
            "seed": arr.seed,
            "initial_states": arr.initial_states(),
            "rule": (
                "tile row q, column j (chain q mod L of PE (q div L, j)) resets to "
                "ref.prng.seed_state_int(seed, q, j) and is never reseeded between tiles; "
                "before each MAC of that chain it steps once (never on idle or stalled cycles); "
                f"the MAC's word is the new state masked to {cfg.rand_bits} bits "
                "(= ref.array.ArrayModel(cfg, R*L, C, seed) / ref.matmul with state continuation)"
            ),
        }
    return {
        "sidecar_version": SIDECAR_VERSION,
        "module": name,
        "generator": "srmac hwgen (Amaranth 0.5)",
        "kind": "output-stationary systolic array",
        "rows": arr.rows,
        "cols": C,
        "interleave": L,
        "tile_rows": R,
        "chains": ("chain l of PE (i, j) is row i*L + l of the tile (PE (i*L + l, j) of an "
                   f"{R} x {C} array)" if L > 1 else "one chain per PE"),
        "mac": cfg.spec(),
        "in_fmt": cfg.in_fmt.to_dict(),
        "acc_fmt": cfg.acc_fmt.to_dict(),
        "rounding": cfg.rounding,
        "rbits": r,
        "rand_bits": cfg.rand_bits,
        "rand_source": "prng" if cfg.rand_bits else "none",
        "rand_layout": layout,
        "generator_rule": gen,
        "pipeline": arr.pipeline,
        "pe_latency": arr.latency,
        "drain_cycles": drain,
        "tile_cycles": (f"{R} + K + {drain} + {R} with no stalls" if L == 1 else
                        f"at most {R} + {L} + {L}*K + {drain} + {R}*{L + 1} with no stalls"),
        "protocol": (
            f"per tile: {R} c_in beats (initial accumulators, row by row), then K a/b beats "
            "(a and b transfer together; a.last on k = K-1, K >= 1), then "
            f"{R} c_out beats (results row by row). Streams: a transfer is valid & ready at a "
            "rising clk edge."
            + (f" Each a/b beat takes {L} cycles (one per chain)." if L > 1 else "")
        ),
        "tiling": (f"output (m, n) of a larger product runs on tile row m mod {R}, column "
                   f"n mod {C}; blocks row-major; edge blocks padded with code 0; see "
                   "ref/array.py"),
        "clock": "clk, rising edge",
        "reset": "rst, synchronous, active high (also reseeds every PE generator)",
        "ports": [
            {"name": "clk", "dir": "in", "width": 1},
            {"name": "rst", "dir": "in", "width": 1},
        ] + [p for s in streams for p in s["ports"]],
        "streams": streams,
    }


def export_array(cfg: MacConfig, rows: int, cols: int, *, seed: int = 0, pipeline: int = 0,
                 interleave: int = 1, name: str | None = None) -> tuple[str, str, dict]:
    """``(module_name, verilog_text, sidecar)`` of an R x C array (for ``srmac verilog --array``)."""
    arr = build_array(cfg, rows, cols, seed, pipeline, interleave)
    name = name or array_module_name(arr)
    return name, array_to_verilog(arr, name), array_sidecar(arr, name)
