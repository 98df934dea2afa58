"""``SystolicArray``: an R x C output-stationary array of SR MAC processing elements.

Each processing element (PE) is a :class:`hwgen.mac.MacUnit` (random bits from
its ``rand`` port) beside its own xorshift32 generators. With ``interleave=L``
each PE runs ``L`` independent chains through an ``L``-stage accumulation loop
(C-slow, see :mod:`hwgen.mac`): chain ``l`` of PE ``(i, j)`` is PE ``(i*L + l, j)``
of an ``(R*L) x C`` array, so the array computes the tiles of that taller array,
with the same generators (``ref.prng.seed_state_int(seed, i*L + l, j)``, stepped
once per MAC of that chain). The array computes tiles ``Z = C0 + A @ B`` with
``A`` (R*L x K), ``B`` (K x C), ``C0`` (R*L x C); :mod:`ref.array` is its golden
model (``ArrayModel(cfg, R*L, C, seed)``: same tiles, same generator states
across tiles).

Design ("bubble" skew, no global stall): a *beat* (column k of A, row k of B)
enters the array when both the ``a`` and ``b`` streams offer one; the cycles
where one of them stalls enter as bubbles (valid = 0). Row i of A is delayed
by i registers, column j of B by j registers, and both move one PE per cycle,
so A[i, k] and B[k, j] meet at PE (i, j) exactly ``i + j`` cycles after their
beat entered, bubbles or not. The valid and first flags ride with A. So the
array never stalls internally, and stalls only change *when* a MAC happens,
never which MACs or their random words.

Interleaved (L > 1): a beat is held in a buffer and enters as L *sub-beats* on
consecutive cycles, sub-beat ``l`` (rows ``i*L + l`` of A, the same row of B) in a
cycle whose phase (cycle count modulo L, free-running from reset) is ``l``; so
chain ``l`` of PE (i, j) always meets its loop slot, whatever the stalls (a
stalled beat waits for the next phase 0). A PE's accumulator register shows its
chains in turn; the results of a row of the tall array are collected over L
cycles into a row buffer before they leave on ``c_out``.

A tile runs in four phases (named states of one ``m.FSM()``, no overlap, the simplest
correct design):

1. LOAD: R*L beats of ``c_in`` (row q of C0 each): into per-PE preload registers
   (L = 1), or loaded into the PEs' loops, each beat offered for L cycles (L > 1);
2. COMPUTE: K beats of ``a``/``b``; the ``a`` beat with ``last`` set ends it;
3. DRAIN: R + C - 2 + MAC latency cycles until PE (R-1, C-1) has its result;
4. OUTPUT: R*L beats of ``c_out`` (row q of Z each; ``last`` on row R*L-1),
   each waiting for ``c_out.ready``; then back to LOAD.

Streams (``amaranth.lib.stream``; a transfer is ``valid & ready`` on a rising
edge; lane l of a ``data`` field is bits ``[l*w, (l+1)*w)`` of the payload):

* ``a``: In, payload ``{data: R*L x in_fmt.width, last: 1}`` (lane q = A[q, k]);
* ``b``: In, payload ``{data: C x in_fmt.width}`` (lane j = B[k, j]);
* ``c_in``: In, payload ``{data: C x acc_fmt.width}`` (lane j = C0[q, j]);
* ``c_out``: Out, payload ``{data: C x acc_fmt.width, last: 1}``.

``a.ready`` is ``COMPUTE & b.valid`` (and, for L > 1, the beat buffer free by the
end of the cycle) and ``b.ready`` likewise with ``a.valid``, so A and B beats always
transfer together.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig
from ref.prng import seed_state_int

from .mac import MAX_INTERLEAVE, MAX_PIPELINE, MacUnit, phase_plus
from .prng import Xorshift32Gen, Xorshift32Ring

__all__ = ["SystolicArray", "MAX_DIM", "tile_cycles", "drain_cycles", "select"]

#: Largest rows or cols the generator accepts (a sanity bound, not a hardware limit).
MAX_DIM = 64


def a_layout(cfg: MacConfig, rows: int):
    return data.StructLayout({"data": data.ArrayLayout(cfg.in_fmt.width, rows), "last": 1})


def b_layout(cfg: MacConfig, cols: int):
    return data.StructLayout({"data": data.ArrayLayout(cfg.in_fmt.width, cols)})


def c_in_layout(cfg: MacConfig, cols: int):
    return data.StructLayout({"data": data.ArrayLayout(cfg.acc_fmt.width, cols)})


def c_out_layout(cfg: MacConfig, cols: int):
    return data.StructLayout({"data": data.ArrayLayout(cfg.acc_fmt.width, cols), "last": 1})


def select(index, values):
    """``values[index]`` as one expression (a multiplexer chain): a continuous assignment in the
    Verilog, which Icarus evaluates at time 0 even when no input ever changes (an ``always @*``
    block, what a combinational ``m.Switch`` becomes, would leave its outputs X then)."""
    out = values[0]
    for k in range(1, len(values)):
        out = Mux(index == k, values[k], out)
    return out


def tile_cycles(rows: int, cols: int, k: int, pipeline: int = 0, interleave: int = 1) -> int:
    """Clock cycles of one tile with every stream always ready/valid (LOAD to last OUTPUT beat).

    ``rows`` are the PE rows (R); a tile has R * interleave rows. For ``interleave`` L > 1
    this is the most a tile takes: its first sub-beat waits for phase 0, up to L - 1 cycles
    less in practice (see :class:`SystolicArray`).
    """
    L = interleave
    if L == 1:
        return rows + k + drain_cycles(rows, cols, pipeline) + rows
    # LOAD (R*L rows of L cycles), accept the first beat, wait for phase 0 (at most L - 1),
    # K beats of L sub-beats, DRAIN, then R*L rows of L capture cycles and one transfer each
    return (rows * L * L + 1 + (L - 1) + k * L + drain_cycles(rows, cols, pipeline, L)
            + rows * L * (L + 1))


def drain_cycles(rows: int, cols: int, pipeline: int = 0, interleave: int = 1) -> int:
    """DRAIN cycles: the last beat reaches PE (R-1, C-1) after R+C-2 cycles, then the MAC latency."""
    return rows + cols - 2 + pipeline + interleave


class SystolicArray(wiring.Component):
    """R x C output-stationary SR MAC array for ``cfg`` (a :class:`ref.MacConfig`).

    ``seed``: base seed of the PE generators (0..2**32-1); ``pipeline``: register
    stages inside each MAC (see :class:`hwgen.mac.MacUnit`); ``interleave``: chains per
    PE (L), so a tile has ``tile_rows = R * L`` rows. Clock and synchronous active-high
    reset from the ``sync`` domain; reset also reseeds every generator.

    Members: ``a``, ``b``, ``c_in`` In(stream.Signature(...)) and ``c_out``
    Out(stream.Signature(...)), the layouts of :func:`a_layout` (R*L lanes),
    :func:`b_layout`, :func:`c_in_layout` and :func:`c_out_layout` (C lanes).
    """

    def __new__(cls, cfg, rows, cols, *, seed=0, pipeline=0, interleave=1):
        # Check before the object exists: a rejected array is never created, so
        # Amaranth has no unused elaboratable to warn about.
        cls._validate(cfg, rows, cols, seed, pipeline, interleave)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, cfg: MacConfig, rows: int, cols: int, *, seed: int = 0,
                 pipeline: int = 0, interleave: int = 1):
        self._validate(cfg, rows, cols, seed, pipeline, interleave)
        self.cfg, self.rows, self.cols = cfg, rows, cols
        self.seed, self.pipeline, self.interleave = seed, pipeline, interleave
        q = self.tile_rows
        super().__init__({
            "a": In(stream.Signature(a_layout(cfg, q))),
            "b": In(stream.Signature(b_layout(cfg, cols))),
            "c_in": In(stream.Signature(c_in_layout(cfg, cols))),
            "c_out": Out(stream.Signature(c_out_layout(cfg, cols))),
        })

    @staticmethod
    def _validate(cfg, rows, cols, seed, pipeline, interleave=1):
        if not isinstance(cfg, MacConfig):
            raise ValueError(f"cfg must be a ref.MacConfig, got {type(cfg).__name__}")
        for name, v in (("rows", rows), ("cols", cols)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DIM:
                raise ValueError(f"array {name} must be an integer in 1..{MAX_DIM}, got {v!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 32:
            raise ValueError(f"seed must be an integer in 0..2**32-1, got {seed!r}")
        if isinstance(pipeline, bool) or not isinstance(pipeline, int) \
                or not 0 <= pipeline <= MAX_PIPELINE:
            raise ValueError(f"pipeline must be an integer in 0..{MAX_PIPELINE}, got {pipeline!r}")
        if isinstance(interleave, bool) or not isinstance(interleave, int) \
                or not 1 <= interleave <= MAX_INTERLEAVE:
            raise ValueError(f"interleave must be an integer in 1..{MAX_INTERLEAVE}, "
                             f"got {interleave!r}")
        # the MAC's own limits (datapath, interleave)
        MacUnit._validate(cfg, "port", seed, pipeline, None, interleave)

    @property
    def tile_rows(self) -> int:
        """Rows of a tile: R * interleave (chain l of PE row i is tile row i*L + l)."""
        return self.rows * self.interleave

    @property
    def latency(self) -> int:
        """Latency of one PE's MAC (cycles)."""
        return self.pipeline + self.interleave

    def initial_states(self) -> list[list[int]]:
        """Reset states of the generators, ``[q][j]`` for tile row q (PE row q // L, chain q % L)."""
        return [[seed_state_int(self.seed, q, j) for j in range(self.cols)]
                for q in range(self.tile_rows)]

    def elaborate(self, platform):
        m = Module()
        cfg, R, C, L = self.cfg, self.rows, self.cols, self.interleave
        wa, Q = cfg.acc_fmt.width, self.tile_rows

        # ---- control signals (the FSM at the end drives them) ----
        row = Signal(range(Q + 1))  # tile row of LOAD and OUTPUT
        in_load, in_compute, in_output = Signal(), Signal(), Signal()
        phase = Signal(range(L), name="phase")  # cycle count mod L (free-running)
        next_row = Signal()  # LOAD / OUTPUT: the row transfers this cycle
        if L > 1:
            m.d.sync += phase.eq(Mux(phase == L - 1, 0, phase + 1))
            rows = self._row_counters(m, row, next_row)
        else:
            rows = None

        # ---- chain start values ----
        if L == 1:  # preload registers c0[i][j], written row by row in LOAD, used by in_first
            m.d.comb += self.c_in.ready.eq(in_load)
            c0 = [[Signal(wa, name=f"c0_{i}_{j}") for j in range(C)] for i in range(R)]
            with m.If(in_load & self.c_in.valid):
                for i in range(R):
                    with m.If(row == i):
                        m.d.sync += [c0[i][j].eq(self.c_in.payload.data[j]) for j in range(C)]
            starts = c0
            load_row = in_load & self.c_in.valid
        else:  # loaded into the PEs' loops (start="load"), one row of the tile per L cycles
            starts, load_row = self._load_rows(m, in_load, rows, phase)

        # ---- beats into the array: per PE row (valid, first, A lane), per column B lane ----
        if L == 1:
            edge_a, edge_b, done = self._direct_beats(m, in_compute)
        else:
            edge_a, edge_b, done = self._buffered_beats(m, in_compute, phase)

        accs = self._grid(m, edge_a, edge_b, starts)

        # ---- output: row `row` of the tile ----
        if L == 1:
            for i in range(R):
                with m.If(row == i):
                    m.d.comb += [self.c_out.payload.data[j].eq(accs[i][j]) for j in range(C)]
            m.d.comb += self.c_out.valid.eq(in_output)
            out_row = self.c_out.ready
        else:
            out_row = self._captured_rows(m, accs, rows, in_output, phase)
        # `& in_output`: with one row `row` never changes, and Icarus never runs an always @*
        # block whose inputs never change, which left `last` at X (seen in the cocotb bench).
        m.d.comb += self.c_out.payload.last.eq((row == Q - 1) & in_output)

        # ---- phase transitions ----
        drain = drain_cycles(R, C, self.pipeline, L)
        cnt = Signal(range(drain + 1))

        def step_rows(moved, after):
            """A row moved in or out: the next row, and state ``after`` past the last one."""
            m.d.comb += next_row.eq(moved)
            with m.If(moved):
                with m.If(row == Q - 1):
                    m.d.sync += row.eq(0)
                    m.next = after
                with m.Else():
                    m.d.sync += row.eq(row + 1)

        with m.FSM(init="LOAD") as fsm:
            with m.State("LOAD"):
                step_rows(load_row, "COMPUTE")
            with m.State("COMPUTE"):
                with m.If(done):
                    m.d.sync += cnt.eq(drain - 1)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(cnt == 0):
                    m.next = "OUTPUT"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("OUTPUT"):
                step_rows(out_row, "LOAD")
        # The phases as plain comparisons of the state (continuous assignments: Icarus never
        # runs an always @* block whose inputs have not changed yet, so a phase flag driven
        # from inside a state would stay X until the first transition).
        m.d.comb += [in_load.eq(fsm.ongoing("LOAD")), in_compute.eq(fsm.ongoing("COMPUTE")),
                     in_output.eq(fsm.ongoing("OUTPUT"))]
        return m

    def _row_counters(self, m, row, next_row):
        """L > 1: tile row ``row`` as (PE row i, chain l) and (i + l) mod L, advanced with it."""
        R, L = self.rows, self.interleave
        pe_row, chain = Signal(range(R), name="row_pe"), Signal(range(L), name="row_chain")
        diag = Signal(range(L), name="row_diag")
        with m.If(next_row):
            with m.If(row == R * L - 1):
                m.d.sync += [pe_row.eq(0), chain.eq(0), diag.eq(0)]
            with m.Elif(chain == L - 1):
                m.d.sync += [pe_row.eq(pe_row + 1), chain.eq(0), diag.eq(phase_plus(diag, 2, L))]
            with m.Else():
                m.d.sync += [chain.eq(chain + 1), diag.eq(phase_plus(diag, 1, L))]
        return pe_row, chain, diag

    def _load_rows(self, m, in_load, rows, phase):
        """L > 1: tile row q = i*L + l of ``c_in`` into chain l of the PEs of row i.

        PE (i, j)'s chain l leaves its loop in the cycles whose phase is
        (l + i + j + pipeline - 1) mod L; a row is offered to the PEs for L consecutive
        cycles (an interrupted window starts again: a load writes the same code), then
        taken. Returns (per-PE (load, code) pairs, "the row transfers this cycle").
        """
        R, C, L = self.rows, self.cols, self.interleave
        pe_row, chain, diag = rows
        window = Signal(range(L), name="load_window")  # consecutive cycles the row was offered
        offered = in_load & self.c_in.valid
        with m.If(offered):
            m.d.sync += window.eq(Mux(window == L - 1, 0, window + 1))
        with m.Else():
            m.d.sync += window.eq(0)
        take = Signal()
        m.d.comb += [take.eq(offered & (window == L - 1)), self.c_in.ready.eq(in_load & (window == L - 1))]
        starts = [[None] * C for _ in range(R)]
        for i in range(R):
            for j in range(C):
                slot = phase_plus(phase, 1 - self.pipeline - j, L) == diag
                load = Signal(name=f"load_{i}_{j}")
                m.d.comb += load.eq(offered & (pe_row == i) & slot)
                starts[i][j] = (load, self.c_in.payload.data[j])
        return starts, take
    def _direct_beats(self, m, in_compute):
        """L = 1: a beat enters the array in the cycle it transfers."""
        inject = Signal()  # a beat enters this cycle (both streams transfer)
        first = Signal(init=1)  # the next beat is k = 0 of its tile
        m.d.comb += [
            self.a.ready.eq(in_compute & self.b.valid),
            self.b.ready.eq(in_compute & self.a.valid),
            inject.eq(in_compute & self.a.valid & self.b.valid),
        ]
        with m.If(inject):
            m.d.sync += first.eq(self.a.payload.last)
        edge_a = [(inject, first & inject, self.a.payload.data[i]) for i in range(self.rows)]
        edge_b = [self.b.payload.data[j] for j in range(self.cols)]
        return edge_a, edge_b, inject & self.a.payload.last

    def _buffered_beats(self, m, in_compute, phase):
        """L > 1: a beat waits in a buffer, then enters as L sub-beats in phases 0 .. L-1
        (sub-beat l: rows i*L + l of A, the beat's row of B)."""
        cfg, R, C, L = self.cfg, self.rows, self.cols, self.interleave
        wi = cfg.in_fmt.width
        hold_a = Signal(data.ArrayLayout(wi, R * L), name="hold_a")
        hold_b = Signal(data.ArrayLayout(wi, C), name="hold_b")
        busy, hold_last = Signal(), Signal()
        sub = Signal(range(L), name="sub")  # the sub-beat that enters next
        issue = Signal()  # a sub-beat enters this cycle
        ending = Signal()  # the beat's last sub-beat enters this cycle
        m.d.comb += [issue.eq(busy & (phase == sub)), ending.eq(issue & (sub == L - 1))]
        free = ~busy | (ending & ~hold_last)  # the buffer can take the next beat of this tile
        take = Signal()
        m.d.comb += [
            self.a.ready.eq(in_compute & free & self.b.valid),
            self.b.ready.eq(in_compute & free & self.a.valid),
            take.eq(in_compute & free & self.a.valid & self.b.valid),
        ]
        with m.If(take):
            m.d.sync += [hold_a.eq(self.a.payload.data), hold_b.eq(self.b.payload.data),
                         hold_last.eq(self.a.payload.last), busy.eq(1), sub.eq(0)]
        with m.Elif(issue):
            m.d.sync += sub.eq(Mux(sub == L - 1, 0, sub + 1))
            with m.If(sub == L - 1):
                m.d.sync += busy.eq(0)
        edge_a = []
        no_first = Signal()  # the chains start by loads (LOAD), never by in_first
        for i in range(R):
            lane = Signal(wi, name=f"sub_a{i}")
            m.d.comb += lane.eq(select(sub, [hold_a[i * L + chain] for chain in range(L)]))
            edge_a.append((issue, no_first, lane))
        edge_b = [hold_b[j] for j in range(C)]
        return edge_a, edge_b, ending & hold_last

    def _grid(self, m, edge_a, edge_b, starts):
        """The PE grid: A moves right, B moves down, one PE per cycle. Returns acc[i][j]."""
        cfg, R, C, L = self.cfg, self.rows, self.cols, self.interleave
        wi, nb = cfg.in_fmt.width, cfg.rand_bits

        def delay(sigs, n, tag):
            for s in range(n):
                regs = [Signal.like(x, name=f"{tag}_d{s}_{q}") for q, x in enumerate(sigs)]
                m.d.sync += [r_.eq(x) for r_, x in zip(regs, sigs, strict=True)]
                sigs = regs
            return sigs

        # skew: row i of A (with valid, first) delayed i cycles, column j of B j cycles
        a_rows = [delay(list(edge_a[i]), i, f"askew{i}") for i in range(R)]
        b_in_row = [delay([edge_b[j]], j, f"bskew{j}")[0] for j in range(C)]
        accs = [[None] * C for _ in range(R)]
        for i in range(R):
            v_in, f_in, x_in = a_rows[i]
            b_next = []
            for j in range(C):
                pe = MacUnit(cfg, rand="port", seed=self.seed, pipeline=self.pipeline,
                             interleave=L, start="first" if L == 1 else "load")
                m.submodules[f"pe_{i}_{j}"] = pe
                y_in = b_in_row[j]
                m.d.comb += [pe.in_valid.eq(v_in), pe.a.eq(x_in), pe.b.eq(y_in)]
                if L == 1:
                    m.d.comb += [pe.in_first.eq(f_in), pe.c.eq(starts[i][j])]
                else:  # chain starts are loaded (LOAD phase); every MAC accumulates
                    load, code = starts[i][j]
                    m.d.comb += [pe.load.eq(load), pe.c.eq(code)]
                if nb:
                    if L == 1:
                        gen = Xorshift32Gen(self.seed, i, j)
                    else:
                        gen = Xorshift32Ring(self.seed, [(i * L + l_, j) for l_ in range(L)],
                                             offset=i + j)
                    m.submodules[f"prng_{i}_{j}"] = gen
                    m.d.comb += [gen.advance.eq(v_in), pe.rand.eq(gen.word[:nb])]
                accs[i][j] = pe.acc
                # Pass-through registers to the right and downwards.
                if j + 1 < C:
                    v_r, f_r, x_r = (Signal(name=f"av_{i}_{j}"), Signal(name=f"af_{i}_{j}"),
                                     Signal(wi, name=f"ax_{i}_{j}"))
                    m.d.sync += [v_r.eq(v_in), f_r.eq(f_in), x_r.eq(x_in)]
                    v_in, f_in, x_in = v_r, f_r, x_r
                if i + 1 < R:
                    y_r = Signal(wi, name=f"by_{i}_{j}")
                    m.d.sync += y_r.eq(y_in)
                    b_next.append(y_r)
            b_in_row = b_next
        return accs

    def _captured_rows(self, m, accs, rows, in_output, phase):
        """L > 1: tile row q = i*L + l collected over L cycles, then offered on ``c_out``.

        Chain l of PE (i, j) shows in the PE's accumulator register in the cycles whose
        phase is (l + i + j + pipeline) mod L. Returns "the row transfers this cycle".
        """
        cfg, R, C, L = self.cfg, self.rows, self.cols, self.interleave
        wa = cfg.acc_fmt.width
        pe_row, _chain, diag = rows  # the tile row being collected
        buf = [Signal(wa, name=f"row_buf{j}") for j in range(C)]
        count = Signal(range(L + 1), name="collected")  # capture cycles done for this row
        full = count == L
        for j in range(C):
            col = Signal(wa, name=f"out_col{j}")
            m.d.comb += col.eq(select(pe_row, [accs[i][j] for i in range(R)]))
            with m.If(in_output & ~full & (phase_plus(phase, -(j + self.pipeline), L) == diag)):
                m.d.sync += buf[j].eq(col)
        transfer = Signal()
        m.d.comb += [transfer.eq(in_output & full & self.c_out.ready),
                     self.c_out.valid.eq(in_output & full)]
        m.d.comb += [self.c_out.payload.data[j].eq(buf[j]) for j in range(C)]
        with m.If(transfer):
            m.d.sync += count.eq(0)
        with m.Elif(in_output & ~full):
            m.d.sync += count.eq(count + 1)
        return transfer
