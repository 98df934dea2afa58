"""``srmac adaqat``: learn weight/activation bit-widths during QAT (AdaQAT, arXiv 2404.16876).

Examples::

    srmac adaqat --model mlp --lambda 0.01 --epochs 3 --limit-train 6000
    srmac adaqat --model cnn --fixed 4/4 --epochs 3          # fixed-width QAT baseline
    srmac adaqat --model resnet-small --pretrain-epochs 2 --epochs 3   # from a float model
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "adaqat",
        help="adaptive bit-width QAT (AdaQAT) on Fashion-MNIST, or a fixed-width QAT baseline",
        description=(
            "Quantization-aware training with LSQ quantizers whose weight and activation "
            "bit-widths N_w, N_a are learned: finite-difference task-loss gradient plus lambda "
            "times the gradient of N_w*N_a, frozen once they stop moving, then fine-tuning. "
            "Writes bits.csv (N_w, N_a per step), bits.png, summary.json and summary.csv."
        ),
    )
    p.add_argument("--model", choices=("mlp", "cnn", "resnet-small"), default="mlp")
    p.add_argument("--dataset", choices=("fashion-mnist",), default="fashion-mnist")
    p.add_argument("--lambda", dest="lam", type=float, default=0.01,
                   help="weight of the hardware cost N_w*N_a [default: 0.01]")
    p.add_argument("--epochs", type=int, default=2, help="QAT epochs (exploration + fine-tuning)")
    p.add_argument("--fixed", default=None, metavar="W/A",
                   help="fixed-width QAT baseline, e.g. 4/4 (no bit-width learning)")
    p.add_argument("--init-bits", type=float, default=8.0, help="initial N_w and N_a [default: 8]")
    p.add_argument("--min-bits", type=float, default=2.0, help="lower bound of N [default: 2]")
    p.add_argument("--max-bits", type=float, default=8.0, help="upper bound of N [default: 8]")
    p.add_argument("--bit-lr", type=float, default=0.5, help="bit-width learning rate [default: 0.5]")
    p.add_argument("--patience", type=int, default=50,
                   help="freeze N once its last PATIENCE updates span < --freeze-tol [default: 50]")
    p.add_argument("--freeze-tol", type=float, default=0.3, help="[default: 0.3 bit]")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="float epochs before QAT (AdaQAT as fine-tuning) [default: 0]")
    p.add_argument("--lr", type=float, default=0.02, help="SGD learning rate [default: 0.02]")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=int, default=None, help="use the first N training samples")
    p.add_argument("--limit-test", type=int, default=None, help="use the first N test samples")
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden width [default: 256]")
    p.add_argument("--channels", type=int, default=8, help="CNN/ResNet base channels [default: 8]")
    p.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--out", default=None, help="output folder [default: build/adaqat/...]")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_adaqat)


def _adaqat(args) -> int:
    from .adaqat_train import AdaQatOptions, run

    fields = AdaQatOptions.__dataclass_fields__
    run(AdaQatOptions(**{k: v for k, v in vars(args).items() if k in fields}))
    return 0
