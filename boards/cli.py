"""``srmac board``: the array board prototype (simulated, on a serial port, or built).

``srmac board sim --array 2x2 --shape 3x6x2`` runs a random product through
the board top in Amaranth's simulator (UART bit by bit) and compares it with
``ref.array``; ``srmac board run --port /dev/ttyUSB1`` does the same on an
iCEBreaker (pyserial; the comparison assumes the board was just reset, since
its generators continue across runs); ``srmac board build`` makes the iCEBreaker bitstream.
"""

from __future__ import annotations

__all__ = ["register"]


def register(sub):
    p = sub.add_parser("board", help="array board prototype: simulate, run on a board, or build")
    p.add_argument("action", choices=("sim", "run", "build"))
    p.add_argument("--mac", default="e5m2:e6m5:sr_eager:4", help="MAC spec (default e5m2:e6m5:sr_eager:4)")
    p.add_argument("--array", default="2x2", help="array shape ROWSxCOLS (default 2x2)")
    p.add_argument("--seed", type=int, default=0, help="PE generator seed (default 0)")
    p.add_argument("--kmax", type=int, default=None, help="K per RUN (default 8 in sim, 256 on a board)")
    p.add_argument("--shape", default="3x6x2", help="product MxKxN for sim/run (default 3x6x2)")
    p.add_argument("--port", default=None, help="serial port for `run` (e.g. /dev/ttyUSB1)")
    p.add_argument("--build-dir", default="build/icebreaker", help="build folder for `build`")
    p.set_defaults(func=_board)


def _board(args) -> int:
    import numpy as np

    import ref
    from hwgen.array_export import parse_shape
    from hwgen.vectors import _random_finite
    from ref.array import ArrayModel

    cfg = ref.parse_mac(args.mac)
    R, C = parse_shape(args.array)
    if args.action == "build":
        from .icebreaker import build

        build(cfg, R, C, seed=args.seed, kmax=args.kmax or 256, build_dir=args.build_dir)
        print(f"built {args.build_dir}/srmac_array.bin")
        return 0
    try:
        M, K, N = (int(x) for x in args.shape.lower().split("x"))
    except ValueError:
        raise ValueError(f"--shape {args.shape!r} not understood: write MxKxN, e.g. 3x6x2") from None
    if min(M, K, N) < 1:
        raise ValueError(f"--shape {args.shape!r}: every size must be >= 1")
    from .host import Accelerator

    if args.action == "sim":
        from .core import BoardTop
        from .sim import SimTransport

        kmax = args.kmax or 8
        port = SimTransport(BoardTop(cfg, R, C, seed=args.seed, kmax=kmax, divisor=4))
    else:
        if not args.port:
            raise ValueError("`srmac board run` needs --port (the board's serial device)")
        port = args.port
    acc = Accelerator(port)
    info = acc.info
    if (info["rows"], info["cols"], info["seed"]) != (R, C, args.seed):
        raise ValueError(f"the board is {info['rows']}x{info['cols']} seed {info['seed']}: "
                         "pass matching --array and --seed")
    rng = np.random.default_rng(1)
    A = _random_finite(cfg.in_fmt, rng, M * K).reshape(M, K)
    B = _random_finite(cfg.in_fmt, rng, K * N).reshape(K, N)
    got = acc.matmul(A, B)
    want = ArrayModel(cfg, R, C, args.seed).matmul(A, B, k_tile=info["kmax"])
    bad = int((got != want).sum())
    print(f"board {R}x{C} {cfg.spec()}: {M}x{K} @ {K}x{N}, {bad} of {M * N} outputs differ "
          "from ref.array")
    return 1 if bad else 0
