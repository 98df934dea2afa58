"""``srmac train``: train a small Fashion-MNIST model on emulated SR MACs.

Examples::

    srmac train --model mlp --mac e5m2:e6m5:sr_eager:4 --epochs 1 --limit-train 512
    srmac train --model cnn --mac fp32 --epochs 5            # plain float baseline
    torchrun --standalone --nproc-per-node 2 -m ref.cli train --model mlp --mac e5m2:e6m5:rn
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an MLP/CNN on Fashion-MNIST with every GEMM on the emulated MAC",
        description=(
            "Train a small model on Fashion-MNIST with every GEMM (forward, backward to inputs, "
            "backward to weights) run bit-exactly by the golden model. Writes log.csv, curves.png "
            "and summary.json. Runs under torchrun (DDP: gloo on CPU, nccl on CUDA)."
        ),
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


def _train(args) -> int:
    from .train import TrainOptions, run

    fields = TrainOptions.__dataclass_fields__
    opts = TrainOptions(**{k: v for k, v in vars(args).items() if k in fields})
    run(opts)
    return 0
