"""``srmac build | flash | run`` (and ``srmac board sim|run|build``): the array on an FPGA board.

``srmac build --board icebreaker --rows 2 --cols 2 --in e5m2 --acc e6m5
--rounding sr_eager --rbits 4`` makes the bitstream with the YoWASP tools
(``--dry-run`` prints the plan and runs nothing); ``srmac flash --board
icebreaker`` writes it to the board with openFPGALoader or iceprog
(``--dry-run`` prints the command); ``srmac run --port /dev/ttyUSB1`` sends a
random product to the board through :class:`boards.host.Accelerator` and
compares its codes with :class:`ref.array.ArrayModel` (the board must be fresh
from reset: its PE generators continue across runs).

``srmac board sim`` runs the same product through the board top in Amaranth's
simulator (UART bit by bit); ``board run``/``board build`` are the older
spellings of ``run``/``build``.

The boards, their tools and programmers are in :mod:`boards.registry`.
Every user-facing failure (unknown board, programmer missing, no board on USB,
missing serial port) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap

from ref.cli import add_mac_arguments, check_outputs, mac_from_args, parse_int

from .registry import BOARDS, Board, board_names, find_tool, flash_command, get_board

# The registry's names stay importable from here for older callers.
__all__ = ["register", "Board", "BOARDS", "get_board", "find_tool", "flash_command"]


# ---- helpers ------------------------------------------------------------------------------

def _parse_product(text: str) -> tuple[int, int, int]:
    try:
        M, K, N = (int(x) for x in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"--shape {text!r} not understood: write MxKxN, e.g. 3x6x2") from None
    if min(M, K, N) < 1:
        raise ValueError(f"--shape {text!r}: every size must be >= 1")
    return M, K, N


def _check_product(acc, cfg, shape, data_seed: int, rows: int, cols: int, pe_seed: int,
                   label: str) -> int:
    """Run a random ``shape`` product on ``acc`` and count outputs that differ from ref.array."""
    import numpy as np

    from hwgen.vectors import random_finite
    from ref.array import ArrayModel

    M, K, N = shape
    rng = np.random.default_rng(data_seed)
    A = random_finite(cfg.in_fmt, rng, M * K).reshape(M, K)
    B = random_finite(cfg.in_fmt, rng, K * N).reshape(K, N)
    got = acc.matmul(A, B)
    want = ArrayModel(cfg, rows, cols, pe_seed).matmul(A, B, k_tile=acc.info["kmax"])
    bad = int((got != want).sum())
    print(f"{label} {rows}x{cols} {cfg.spec()}: {M}x{K} @ {K}x{N}, {bad} of {M * N} outputs "
          "differ from ref.array")
    return bad


def _open_board(port: str, board: Board | None = None):
    """:class:`boards.host.Accelerator` on serial ``port``; one-line ValueError when the port is
    missing, cannot be opened or nothing answers."""
    from .host import Accelerator, BoardError

    hint = f" (the {board.title} UART is usually {board.serial_hint})" if board else ""
    if port.startswith("/dev/") and not os.path.exists(port):
        raise ValueError(f"serial port {port} does not exist: connect the board and pass "
                         f"--port{hint}")
    try:
        return Accelerator(port)
    except BoardError as exc:
        raise ValueError(f"no srmac array board answered on {port} ({exc}): flash it with "
                         "`srmac flash` and press reset") from None
    except OSError as exc:  # pyserial's SerialException is an OSError
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        why = ("check permissions: dialout group or udev rules" if "ermission" in msg
               else "is it the board's serial device?")
        raise ValueError(f"cannot open serial port {port}: {msg} ({why})") from None


# ---- build --------------------------------------------------------------------------------

def _design_options(args) -> dict:
    """``pipeline``, ``interleave`` (None: the board defaults) and ``mult`` from the options."""
    return {"pipeline": None if args.pipeline is None else parse_int(args.pipeline, "--pipeline", 0, 8),
            "interleave": (None if args.interleave is None
                           else parse_int(args.interleave, "--interleave", 1, 5)),
            "mult": args.mult}


def _add_design_options(p):
    from .registry import DEFAULT_INTERLEAVE, DEFAULT_PIPELINE

    p.add_argument("--interleave", default=None, metavar="L",
                   help=f"chains per PE: an L-stage accumulation loop, the host sees R*L rows "
                        f"(default {DEFAULT_INTERLEAVE} where the dual datapath applies, else 1; "
                        "1: the one-cycle loop)")
    p.add_argument("--pipeline", default=None, metavar="P",
                   help=f"registers between each PE's product and its loop (default "
                        f"{DEFAULT_PIPELINE})")
    p.add_argument("--mult", default="lut", choices=("lut", "dsp"),
                   help="significand multipliers in logic (lut, default) or DSP blocks (dsp)")


def _build(args) -> int:
    board = get_board(args.board)
    cfg = mac_from_args(args)
    rows = parse_int(args.rows, "--rows", 1)
    cols = parse_int(args.cols, "--cols", 1)
    seed = parse_int(args.seed, "--seed", 0, 2**32 - 1)
    kmax = parse_int(args.kmax, "--kmax", 1)
    design = _design_options(args)
    build_dir = args.build_dir or board.default_build_dir()
    desc = board.check(cfg, rows, cols, seed=seed, kmax=kmax, **design)
    bitstream = os.path.join(build_dir, board.bitstream)
    tools = [(var, tool, pkg, os.environ.get(var) or find_tool(tool)) for var, tool, pkg in board.tools]
    missing = [(tool, pkg) for _, tool, pkg, path in tools if not path]
    if args.dry_run:
        print(f"board      {board.name}: {board.description}")
        print(f"design     {desc}")
        for var, _, pkg, path in tools:
            print(f"tool       {var}={path or f'(missing: pip install {pkg})'}")
        print(f"build dir  {build_dir}")
        print(f"bitstream  {bitstream}")
        print(f"next       srmac flash --board {board.name} --bitstream {bitstream}")
        return 0
    if missing:
        tool, pkg = missing[0]
        raise ValueError(f"{tool} not found: pip install {pkg} (or pip install 'srmac[hw]')")
    check_outputs(dirs=[(build_dir, "--build-dir")])
    for var, _, _, path in tools:
        os.environ.setdefault(var, path)
    print(f"building {board.name}: {desc} in {build_dir} (a few minutes)", flush=True)
    try:
        board.build(cfg, rows, cols, seed=seed, kmax=kmax, build_dir=build_dir, **design)
    except subprocess.CalledProcessError as exc:
        raise ValueError(f"the {board.name} flow failed (exit {exc.returncode}): see the logs "
                         f"in {build_dir}") from None
    print(f"built {bitstream}")
    return 0


# ---- flash --------------------------------------------------------------------------------

# Substrings of a programmer's output meaning "no board/cable on USB" or "no USB permission".
_NO_BOARD = ("device not found", "failed to claim cable", "unable to open ftdi", "no cable",
             "can't find ice ftdi", "no device found", "usb_open")
_NO_ACCESS = ("libusb_error_access", "permission denied", "access denied")


def _flash(args) -> int:
    board = get_board(args.board)
    bitstream = args.bitstream or os.path.join(board.default_build_dir(), board.bitstream)
    timeout = _seconds(args.timeout, "--timeout")
    if os.path.isdir(bitstream):
        raise ValueError(f"--bitstream {bitstream} is a folder: give the bitstream file "
                         f"({board.bitstream})")
    cmd = flash_command(board, bitstream, args.programmer)
    if args.dry_run:
        print(" ".join(_quote(c) for c in cmd))
        return 0
    if not os.path.isfile(bitstream):
        raise ValueError(f"bitstream {bitstream} not found: run `srmac build --board {board.name}` "
                         "first or pass --bitstream")
    prog = os.path.basename(cmd[0])
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ValueError(f"{prog} did not finish in {timeout:g} s: is the {board.title} "
                         "connected?") from None
    except OSError as exc:
        raise ValueError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
    out = res.stdout or ""
    if res.returncode == 0:
        print(f"flashed {bitstream} to the {board.title} with {prog}")
        return 0
    low = out.lower()
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    # quote the line that says what went wrong, else the programmer's last line
    last = next((ln for ln in lines if any(s in ln.lower() for s in _NO_BOARD + _NO_ACCESS)),
                lines[-1] if lines else "no output")
    if "error while loading shared libraries" in low:
        raise ValueError(f"{prog} cannot start ({last}): install the missing library "
                         "(Debian: apt-get install libusb-1.0-0 libftdi1-2)")
    if any(s in low for s in _NO_ACCESS):
        raise ValueError(f"{prog} may not open the {board.title} USB device ({board.usb_id}): add "
                         f"a udev rule or run as a user with USB access ({prog}: {last})")
    if any(s in low for s in _NO_BOARD):
        raise ValueError(f"{prog} found no {board.title} (USB {board.usb_id}): check the USB cable "
                         f"and the udev rules ({prog}: {last})")
    raise ValueError(f"{prog} failed with exit {res.returncode}: {last}")


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


# ---- run ----------------------------------------------------------------------------------

def _run(args) -> int:
    board = get_board(args.board)
    if not args.port:
        raise ValueError(f"`srmac run` needs --port, the board's serial device (the {board.title} "
                         f"UART is usually {board.serial_hint})")
    cfg = mac_from_args(args)
    shape = _parse_product(args.shape)
    seed = parse_int(args.seed, "--seed", 0, 2**64 - 1)
    acc = _open_board(args.port, board)
    info = acc.info
    want = (cfg.in_fmt.width, cfg.acc_fmt.width, cfg.rounding, cfg.rbits or 0)
    got = (info["in_width"], info["acc_width"], info["rounding"], info["rbits"])
    if want != got:
        raise ValueError(f"the board runs {got[0]}-bit inputs, {got[1]}-bit accumulators, "
                         f"{got[2]} r={got[3]}, not {cfg.spec()}: pass the --in/--acc/--rounding/"
                         "--rbits it was built with")
    bad = _check_product(acc, cfg, shape, seed, info["rows"], info["cols"], info["seed"],
                         label=f"{board.name} (PE seed {info['seed']})")
    if bad:
        print("note: the board's PE generators continue across runs; reset it before each "
              "`srmac run`", file=sys.stderr)
    return 1 if bad else 0


# ---- legacy `srmac board sim|run|build` ---------------------------------------------------

def _board(args) -> int:
    from hwgen.array_export import parse_shape

    cfg = mac_from_args(args)
    R, C = parse_shape(args.array)
    seed = parse_int(args.seed, "--seed", 0, 2**32 - 1)
    kmax = parse_int(args.kmax, "--kmax", 1)
    design = _design_options(args)
    for flag, value, actions in (("--build-dir", args.build_dir, ("build",)),
                                 ("--port", args.port, ("run",)),
                                 ("--shape", args.shape, ("sim", "run")),
                                 ("--trials", args.trials, ("faults",)),
                                 ("--target", args.target, ("faults",)),
                                 ("--faults", args.faults, ("faults",))):
        if value is not None and args.action not in actions:
            raise ValueError(f"{flag} is for `srmac board {' or '.join(actions)}`, "
                             f"not `board {args.action}`")
    if args.action == "build":
        board = BOARDS["icebreaker"]
        build_dir = args.build_dir or board.default_build_dir()
        board.check(cfg, R, C, seed=seed, kmax=kmax or 256, **design)
        check_outputs(dirs=[(build_dir, "--build-dir")])
        board.build(cfg, R, C, seed=seed, kmax=kmax or 256, build_dir=build_dir, **design)
        print(f"built {os.path.join(build_dir, board.bitstream)}")
        return 0
    if args.action == "faults":  # the link fault campaign (boards.faults)
        from . import faults

        return faults.report(cfg, R, C, kmax or 4, parse_int(args.trials or "560", "--trials", 1),
                             target=args.target or "model",
                             classes=faults.parse_classes(args.faults), seed=seed)
    shape = _parse_product(args.shape or "3x6x2")
    rows = R  # the rows the host sees: PE rows x chains per PE
    if args.action == "sim":
        from .core import BoardTop
        from .host import Accelerator
        from .registry import design_defaults
        from .sim import SimTransport

        p, L = design_defaults(cfg, design["pipeline"], design["interleave"])
        BoardTop.validate(cfg, R, C, seed=seed, kmax=kmax or 8, divisor=4, pipeline=p,
                          interleave=L)
        acc = Accelerator(SimTransport(BoardTop(cfg, R, C, seed=seed, kmax=kmax or 8,
                                                divisor=4, pipeline=p, interleave=L)))
        rows = R * L
    else:
        if not args.port:
            raise ValueError("`srmac board run` needs --port (the board's serial device)")
        acc = _open_board(args.port)
    info = acc.info
    if args.action == "run":
        rows = info["rows"]  # an interleaved board reports PE rows x chains
    if (info["rows"], info["cols"], info["seed"]) != (rows, C, seed):
        raise ValueError(f"the board is {info['rows']}x{info['cols']} seed {info['seed']}: "
                         "pass matching --array and --seed")
    bad = _check_product(acc, cfg, shape, 1, rows, C, seed, label="board")
    return 1 if bad else 0


def _seconds(text, what: str) -> float:
    """A positive number of seconds from the command line (one-line ValueError otherwise)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"cannot read {what} {text!r}: expected seconds, e.g. 120") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{what} must be a positive number of seconds, got {text}")
    return value


# ---- registration -------------------------------------------------------------------------

_BUILD_EPILOG = """\
examples:
  srmac build --board icebreaker --rows 2 --cols 2 --mac e5m2:e6m5:sr_eager:4
  srmac build --board ulx3s-85f --rows 8 --cols 8 --rounding rn --dry-run
  srmac build --rows 1 --cols 1 --rounding rn --kmax 16 --build-dir build/ice1x1
  srmac build --board ulx3s-25f --rows 6 --cols 6 --interleave 3 --mult dsp --dry-run

Each PE runs --interleave L chains (default 2) through an L-stage loop, so the
host sees an (R*L) x C array; --interleave 1 is the one-cycle loop.

The bitstream lands in <build-dir>/srmac_array.bin (.bit on an ECP5); `srmac
flash` writes it to the board, `srmac run` checks it against ref.array.
"""

_FLASH_EPILOG = """\
examples:
  srmac flash --board icebreaker --dry-run         # print the programmer command
  srmac flash --board ulx3s-85f --bitstream build/ulx3s-85f/srmac_array.bit
  srmac flash --programmer iceprog --timeout 60

No board or no programmer gives one line and exit status 2.
"""

_RUN_EPILOG = """\
examples:
  srmac run --port /dev/ttyUSB1
  srmac run --port /dev/ttyUSB1 --shape 4x64x4 --seed 3 --mac e5m2:e6m5:sr_eager:4

The board must be fresh from reset (its PE generators continue across runs);
exit status 1 when any output differs from ref.array.
"""

_BOARD_EPILOG = """\
examples:
  srmac board sim --shape 3x6x2
  srmac board sim --array 1x2 --mac e4m3:fp16:sr_lazy:8 --kmax 4 --shape 2x9x2
  srmac board sim --array 2x2 --interleave 4 --shape 9x5x3  # a 2x2 array of 4 chains per PE
  srmac board run --port /dev/ttyUSB1 --array 2x2     # the same as `srmac run`
  srmac board faults --trials 10080                    # link fault campaign (--target rtl)

sim drives the board top in Amaranth's simulator through the host driver over a
simulated UART; faults injects one link fault per trial (both directions) and
counts recovered / raised / silent wrong / hang / traceback per fault class
(--seed: the campaign's seed); `board run` and `board build` are the older
spellings of `srmac run` and `srmac build`.
"""


def _parser(sub, name, help_, description, epilog):
    return sub.add_parser(name, help=help_, description=textwrap.fill(description, 79),
                          epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)


def register(sub):
    boards = board_names()

    p = _parser(sub, "build", f"build the array bitstream for an FPGA board ({boards})",
                "Build the output-stationary array of SR MACs behind its UART link as a "
                "bitstream for an FPGA board with the open YoWASP tools (yosys, nextpnr, "
                "icepack / ecppack); --dry-run checks the configuration and prints the plan.",
                _BUILD_EPILOG)
    p.add_argument("--board", default="icebreaker", help=f"board: {boards} (default icebreaker)")
    p.add_argument("--rows", default="2", metavar="R", help="array rows R (default 2)")
    p.add_argument("--cols", default="2", metavar="C", help="array columns C (default 2)")
    add_mac_arguments(p)
    p.add_argument("--seed", default="0", metavar="S",
                   help="PE generator seed built in (default 0)")
    p.add_argument("--kmax", default="256", metavar="K", help="K per RUN command (default 256)")
    _add_design_options(p)
    p.add_argument("--build-dir", default=None, help="build folder (default build/<board>)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, run no tool")
    p.set_defaults(func=_build)

    p = _parser(sub, "flash", "write a bitstream to the board (openFPGALoader, iceprog or fujprog)",
                "Write a bitstream made by `srmac build` to the board with the first installed "
                "programmer (openFPGALoader, iceprog for the iCEBreaker, fujprog for the "
                "ULX3S); --dry-run prints the command.", _FLASH_EPILOG)
    p.add_argument("--board", default="icebreaker", help=f"board: {boards} (default icebreaker)")
    p.add_argument("--bitstream", default=None,
                   help="bitstream file (default build/<board>/srmac_array.bin, .bit on an ECP5)")
    p.add_argument("--programmer", default="auto",
                   help="openFPGALoader, iceprog (iCEBreaker), fujprog (ULX3S) or auto "
                        "(the first one installed; default)")
    p.add_argument("--timeout", default="120", metavar="SECONDS",
                   help="seconds before giving up (default 120)")
    p.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    p.set_defaults(func=_flash)

    p = _parser(sub, "run", "run a random product on the board and check it against ref.array",
                "Send a random matrix product to the array board over its serial port "
                "(boards.host.Accelerator) and compare every output code with the golden "
                "model of the array (ref.array.ArrayModel).", _RUN_EPILOG)
    p.add_argument("--port", default=None, help="serial device of the board (e.g. /dev/ttyUSB1)")
    p.add_argument("--board", default="icebreaker", help=f"board: {boards} (default icebreaker)")
    p.add_argument("--shape", default="3x6x2", help="product MxKxN (default 3x6x2)")
    p.add_argument("--seed", default="0", metavar="S",
                   help="seed of the random inputs (default 0; the PE seed is read from the board)")
    add_mac_arguments(p)
    p.set_defaults(func=_run)

    p = _parser(sub, "board", "array board prototype: simulate (sim); run and build are "
                              "`srmac run` and `srmac build`",
                "The array board prototype: `board sim` runs a random product through the "
                "board top in simulation, bit by bit over a simulated UART, and checks it "
                "against ref.array.", _BOARD_EPILOG)
    p.add_argument("action", choices=("sim", "run", "build", "faults"))
    add_mac_arguments(p)
    p.add_argument("--array", default="2x2", help="array shape ROWSxCOLS (default 2x2)")
    p.add_argument("--seed", default="0", metavar="S", help="PE generator seed (default 0)")
    p.add_argument("--kmax", default=None, metavar="K",
                   help="K per RUN (default 8 in sim, 256 on a board)")
    _add_design_options(p)
    p.add_argument("--shape", default=None, help="product MxKxN for sim/run (default 3x6x2)")
    p.add_argument("--port", default=None, help="serial port for `run` (e.g. /dev/ttyUSB1)")
    p.add_argument("--build-dir", default=None,
                   help="build folder for `build` (default build/icebreaker)")
    p.add_argument("--trials", default=None, metavar="N",
                   help="`faults`: trials, one link fault each (default 560)")
    p.add_argument("--target", default=None, choices=("model", "rtl"),
                   help="`faults`: the board's Python twin (default) or its RTL in simulation")
    p.add_argument("--faults", default=None, metavar="LIST",
                   help="`faults`: comma-separated fault classes (default: all)")
    p.set_defaults(func=_board)
