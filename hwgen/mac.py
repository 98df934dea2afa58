"""``MacUnit``: the streaming fused MAC with an accumulator register.

One operation per clock: ``acc <= round(z + a*b)`` where ``z`` is the ``c``
port when ``in_first`` is high (a new chain starts) and the running
accumulator otherwise, so the operations of one chain may be issued on
consecutive cycles. ``pipeline`` register stages sit between the product
unit and the accumulation loop; the loop itself (accumulator -> adder ->
rounder -> accumulator) is one cycle. Latency in_valid -> out_valid:
``pipeline + 1`` cycles.

Random bits come from the ``rand`` port (``rand="port"``) or from a built-in
xorshift32 generator (``rand="prng"``) seeded like PE (0, 0) of ``ref.matmul``
and stepped once per valid operation, its word masked to ``cfg.rand_bits``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig

from .datapath import AccumulateStep
from .params import MacParams
from .prng import Xorshift32Gen
from .unpack import ProductUnit

__all__ = ["MacUnit", "RAND_MODES", "MAX_PIPELINE"]

RAND_MODES = ("port", "prng")
MAX_PIPELINE = 8


class MacUnit(wiring.Component):
    """Streaming MAC for ``cfg`` (a :class:`ref.MacConfig`).

    Ports (clock and synchronous active-high reset from the ``sync`` domain):
    In ``in_valid`` (1), ``in_first`` (1), ``a``, ``b`` (in_fmt.width),
    ``c`` (acc_fmt.width), ``rand`` (cfg.rand_bits; only with ``rand="port"``
    and an SR rounding); Out ``out_valid`` (1), ``acc`` (acc_fmt.width).
    """

    def __init__(self, cfg: MacConfig, *, rand: str = "port", seed: int = 0, pipeline: int = 0):
        try:
            self._validate(cfg, rand, seed, pipeline)
        except ValueError:
            self._MustUse__silence = True  # a rejected unit is never elaborated: no warning
            raise
        self.cfg, self.rand_mode, self.seed, self.pipeline = cfg, rand, seed, pipeline
        sig = {
            "in_valid": In(1),
            "in_first": In(1),
            "a": In(cfg.in_fmt.width),
            "b": In(cfg.in_fmt.width),
            "c": In(cfg.acc_fmt.width),
            "out_valid": Out(1),
            "acc": Out(cfg.acc_fmt.width),
        }
        if rand == "port" and cfg.rand_bits:
            sig["rand"] = In(cfg.rand_bits)
        super().__init__(sig)

    @staticmethod
    def _validate(cfg, rand, seed, pipeline):
        if not isinstance(cfg, MacConfig):
            raise ValueError(f"cfg must be a ref.MacConfig, got {type(cfg).__name__}")
        if rand not in RAND_MODES:
            raise ValueError(f"rand must be one of {RAND_MODES}, got {rand!r}")
        if not isinstance(pipeline, int) or not 0 <= pipeline <= MAX_PIPELINE:
            raise ValueError(f"pipeline must be an integer in 0..{MAX_PIPELINE}, got {pipeline!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        MacParams(cfg).check()

    @property
    def latency(self) -> int:
        """Cycles from an operation's in_valid to its out_valid."""
        return self.pipeline + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        nb = cfg.rand_bits
        ew = MacParams(cfg).exp_width
        m.submodules.product = pu = ProductUnit(cfg.in_fmt, ew)
        m.d.comb += [pu.a.eq(self.a), pu.b.eq(self.b)]

        word = None
        if nb:
            if self.rand_mode == "port":
                word = self.rand
            else:
                m.submodules.prng = gen = Xorshift32Gen(self.seed, 0, 0)
                m.d.comb += gen.advance.eq(self.in_valid)
                word = gen.word[:nb]

        # Stage 0 (combinational): the operation as it enters the pipeline.
        stage = {
            "valid": self.in_valid,
            "first": self.in_first,
            "c": self.c,
            "p_sign": pu.sign,
            "p_sig": pu.sig,
            "p_exp": pu.exp,
            "p_nan": pu.is_nan,
            "p_inf": pu.is_inf,
        }
        if nb:
            stage["rand"] = word
        for i in range(self.pipeline):
            nxt = {}
            for name, v in stage.items():
                shape = signed(len(v)) if name == "p_exp" else len(v)
                reg = Signal(shape, name=f"pipe{i}_{name}")
                m.d.sync += reg.eq(v)
                nxt[name] = reg
            stage = nxt

        # The accumulation loop: one operation per cycle.
        m.submodules.step = st = AccumulateStep(cfg)
        acc = Signal(cfg.acc_fmt.width, name="acc_reg")
        m.d.comb += [
            st.z.eq(Mux(stage["first"], stage["c"], acc)),
            st.p_sign.eq(stage["p_sign"]),
            st.p_sig.eq(stage["p_sig"]),
            st.p_exp.eq(stage["p_exp"]),
            st.p_nan.eq(stage["p_nan"]),
            st.p_inf.eq(stage["p_inf"]),
        ]
        if nb:
            m.d.comb += st.rand.eq(stage["rand"])
        valid = Signal(name="valid_reg")
        m.d.sync += valid.eq(stage["valid"])
        with m.If(stage["valid"]):
            m.d.sync += acc.eq(st.out)
        m.d.comb += [self.out_valid.eq(valid), self.acc.eq(acc)]
        return m
