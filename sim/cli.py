"""``srmac train``: train a small Fashion-MNIST model on emulated SR MACs.

Examples::

    srmac train --model mlp --mac e5m2:e6m5:sr_eager:4 --epochs 1 --limit-train 512
    srmac train --model cnn --mac fp32 --epochs 5            # plain float baseline
    torchrun --standalone --nproc-per-node 2 -m ref.cli train --model mlp --mac e5m2:e6m5:rn

``srmac train-table``: the results table (models x MACs x seeds), resumable::

    srmac train-table --models mlp --seeds 0,1,2 --epochs 3 --limit-train 12000
"""

from __future__ import annotations

_TRAIN_EXAMPLES = """\
examples:
  srmac train --model mlp --mac e5m2:e6m5:sr_eager:4 --epochs 1 --limit-train 512
  srmac train --model cnn --mac fp32 --epochs 5            # plain float baseline
  torchrun --standalone --nproc-per-node 2 -m ref.cli train --model mlp --mac e5m2:e6m5:rn
"""

_TABLE_EXAMPLES = """\
examples:
  srmac train-table --models mlp --seeds 0,1,2 --epochs 3 --limit-train 12000
  srmac train-table --models mlp,cnn --macs fp32,e5m2:e6m5:sr_eager:4 --seeds 0
"""


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an MLP/CNN on Fashion-MNIST with every GEMM on the emulated MAC",
        description=(
            "Train a small model on Fashion-MNIST with every GEMM (forward, backward to inputs, "
            "backward to weights) run bit-exactly by the golden model. Writes log.csv, curves.png "
            "and summary.json. Runs under torchrun (DDP: gloo on CPU, nccl on CUDA)."
        ),
        epilog=_TRAIN_EXAMPLES,
    )
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--mac", default="fp32",
                   help="MAC of all three GEMMs, in:acc:rounding[:r] (e.g. e5m2:e6m5:sr_eager:4); "
                        "'fp32' = plain float layers (baseline) [default: fp32]")
    p.add_argument("--mac-bwd-input", default=None, help="MAC of the backward-to-inputs GEMM")
    p.add_argument("--mac-bwd-weight", default=None, help="MAC of the backward-to-weights GEMM")
    p.add_argument("--quant-weight", default="rn",
                   help="rounding of weights into the GEMM input format: rn, rz, sr:<r>, or "
                        "<fmt>:<rounding> [default: rn]")
    p.add_argument("--quant-act", default="rn", help="same for activations [default: rn]")
    p.add_argument("--quant-grad", default="rn", help="same for gradients [default: rn]")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128, help="global batch [default: 128]")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--lr-schedule", choices=("const", "cosine"), default="const",
                   help="constant rate, or cosine decay to 0 over all steps [default: const]")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--opt-fmt", default="fp32", help="format of the weights after each update")
    p.add_argument("--opt-momentum-fmt", default=None,
                   help="format of the momentum buffer [default: --opt-fmt]")
    p.add_argument("--opt-rounding", choices=("rn", "rz", "sr"), default="rn")
    p.add_argument("--opt-rbits", type=int, default=None, help="random bits for --opt-rounding sr")
    p.add_argument("--loss-scale", default="dynamic",
                   help="loss scale: a number (1 = none) or 'dynamic' (start 1024) "
                        "[default: dynamic]")
    p.add_argument("--limit-train", type=int, default=None, help="use the first N training samples")
    p.add_argument("--limit-test", type=int, default=None, help="use the first N test samples")
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden width [default: 256]")
    p.add_argument("--channels", type=int, default=8, help="CNN first-layer channels [default: 8]")
    p.add_argument("--data-dir", default=None,
                   help="folder of the Fashion-MNIST IDX files "
                        "[default: /usr/share/datasets/fashion-mnist]")
    p.add_argument("--out", default=None,
                   help="output folder [default: build/train/<model>-<mac>-s<seed>]")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_train)

    t = sub.add_parser(
        "train-table",
        help="the training results table: models x MACs x seeds, resumable",
        description=(
            "Run a grid of `srmac train` runs that differ only in the MAC (default: fp32, then "
            "E5M2 x E5M2 -> E6M5 with rn, rz, sr_lazy and sr_eager at r = 2, 4, 6, 8), "
            "skipping runs already finished with the same options, and write table.csv, "
            "table.md (mean and spread of the test accuracy over seeds, seconds per epoch, "
            "the command of each row) and table.png under --out."
        ),
        epilog=_TABLE_EXAMPLES,
    )
    t.add_argument("--models", default="mlp,cnn", help="comma-separated [default: mlp,cnn]")
    t.add_argument("--macs", default=None,
                   help="comma-separated MACs [default: fp32 and the E5M2 x E5M2 -> E6M5 grid]")
    t.add_argument("--seeds", default="0,1,2", help="comma-separated [default: 0,1,2]")
    t.add_argument("--epochs", type=int, default=3, help="[default: 3]")
    t.add_argument("--limit-train", type=int, default=None, help="use the first N training samples")
    t.add_argument("--limit-test", type=int, default=None, help="use the first N test samples")
    t.add_argument("--batch-size", type=int, default=128, help="[default: 128]")
    t.add_argument("--lr", type=float, default=0.05, help="[default: 0.05]")
    t.add_argument("--lr-schedule", choices=("const", "cosine"), default="cosine",
                   help="[default: cosine: a far less noisy final accuracy]")
    t.add_argument("--hidden", type=int, default=256, help="MLP hidden width [default: 256]")
    t.add_argument("--channels", type=int, default=8, help="CNN first-layer channels [default: 8]")
    t.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    t.add_argument("--out", default="build/train-table",
                   help="root of the runs and the table [default: build/train-table]")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    t.set_defaults(func=_train_table)


def _train(args) -> int:
    from .train import TrainOptions, leave_after_distributed_run, run

    fields = TrainOptions.__dataclass_fields__
    opts = TrainOptions(**{k: v for k, v in vars(args).items() if k in fields})
    summary = run(opts)
    leave_after_distributed_run(summary["world_size"])
    return 0


def _train_table(args) -> int:
    from .table import DEFAULT_MACS, TableSpec, aggregate, parse_list, run_table, write_table
    from .train import TrainOptions

    base = TrainOptions(epochs=args.epochs, limit_train=args.limit_train,
                        limit_test=args.limit_test, batch_size=args.batch_size, lr=args.lr,
                        lr_schedule=args.lr_schedule,
                        hidden=args.hidden, channels=args.channels, data_dir=args.data_dir,
                        device=args.device)
    spec = TableSpec(args.out, models=parse_list(args.models),
                     macs=parse_list(args.macs) if args.macs else list(DEFAULT_MACS),
                     seeds=parse_list(args.seeds, int), base=base)
    rows = aggregate(run_table(spec, progress=args.progress))
    paths = write_table(rows, spec.root)
    print((spec.root / "table.md").read_text())
    print("srmac train-table: wrote " + ", ".join(str(p) for p in paths))
    return 0
