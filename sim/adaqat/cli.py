"""``srmac adaqat``: learn weight/activation bit-widths during QAT (AdaQAT, arXiv 2404.16876).

Examples::

    srmac adaqat --model cnn --lambda 0.01 --epochs 3 --limit-train 6000
    srmac adaqat --model cnn --fixed 4/4 --epochs 3          # fixed-width QAT baseline
    srmac adaqat --model resnet-small --pretrain-epochs 2 --epochs 3   # from a float model
    srmac adaqat --model cnn --per-layer --bit-every 4 --init build/adaqat/.../float_model.pt
    torchrun --nproc-per-node 8 -m ref.cli adaqat --model resnet18 --dataset imagenet \
        --data-dir /data/imagenet --init resnet18_float.pt --batch-size 256 --epochs 30
"""

from __future__ import annotations

from ..cli import (
    add_data_arguments,
    add_training_mac_arguments,
    loop_options,
    model_help,
    training_mac,
)
from ..models import MODELS

_EXAMPLES = """\
examples:
  srmac adaqat --model cnn --lambda 0.05 --epochs 3 --limit-train 10000 --lr-schedule cosine
  srmac adaqat --model mlp --hidden 128 --depth 2 --lambda 0.05 --epochs 3   # 784-128-128-10
  srmac adaqat --model cnn --fixed 4/4 --epochs 3          # fixed-width QAT baseline
  srmac adaqat --model cnn --fixed 4/4 --mac e5m2:e6m5:sr_eager:4 --epochs 1 --limit-train 2000
  srmac adaqat --model resnet-small --pretrain-epochs 2 --per-layer --bit-every 4
  srmac adaqat --model resnet20 --width 0.5 --fixed 4/4 --epochs 1 --limit-train 2000
"""


def register(sub) -> None:
    p = sub.add_parser(
        "adaqat",
        help="adaptive bit-width QAT (AdaQAT), network-wide or per layer, or a fixed-width "
             "QAT baseline; Fashion-MNIST or ImageNet-style folders, torchrun/DDP",
        description=(
            "Quantization-aware training (DoReFa weights, PACT activations, first and last "
            "layers at 8 bits, as in AdaQAT) whose weight and activation bit-widths N_w, N_a are "
            "learned: finite-difference task-loss gradient plus lambda times the gradient of the "
            "BitOPs per MAC, frozen once their integer width settles or alternates between two "
            "neighbours (then the higher), then fine-tuning. --per-layer gives every layer its "
            "own pair; --mac runs the GEMMs on an emulated MAC (with loss scaling). Runs under "
            "torchrun (DDP). Writes bits.csv (widths per step), bits.png, layers.csv, log.csv, "
            "summary.csv, model.pt and summary.json (last: a run without it did not finish)."
        ),
        epilog=_EXAMPLES,
    )
    p.add_argument("--model", choices=tuple(MODELS), default="cnn",
                   help=model_help("cnn") + "; the mlp needs --depth 2 (or --first-last-bits "
                        "0) to have a width to learn")
    add_data_arguments(p, channels_help="CNN/resnet-small base channels [default: 8]")
    p.add_argument("--lambda", dest="lam", type=float, default=0.01,
                   help="weight of the hardware cost (BitOPs per MAC) [default: 0.01]")
    p.add_argument("--epochs", type=int, default=2, help="QAT epochs (exploration + fine-tuning)")
    p.add_argument("--fixed", default=None, metavar="W/A",
                   help="fixed-width QAT baseline, e.g. 4/4 (no bit-width learning)")
    p.add_argument("--per-layer", action="store_true",
                   help="learn one N_w, N_a per layer (finite differences: 2 extra forward "
                        "passes per layer per update)")
    p.add_argument("--bit-every", type=int, default=1, metavar="K",
                   help="update the widths every K-th step only [default: 1]")
    add_training_mac_arguments(p)
    p.add_argument("--quantizer", choices=("dorefa-pact", "lsq"), default="dorefa-pact",
                   help="DoReFa weights + PACT activations (the paper's), or LSQ for both "
                        "[default: dorefa-pact]")
    p.add_argument("--first-last-bits", type=int, default=8, metavar="B",
                   help="width of the first layer's weights and the last layer's weights and "
                        "input (0: they learn like the others) [default: 8]")
    p.add_argument("--init-bits", type=float, default=8.0, help="initial N_w and N_a [default: 8]")
    p.add_argument("--min-bits", type=float, default=2.0, help="lower bound of N [default: 2]")
    p.add_argument("--max-bits", type=float, default=8.0, help="upper bound of N [default: 8]")
    p.add_argument("--bit-lr", type=float, default=0.5, help="bit-width learning rate [default: 0.5]")
    p.add_argument("--patience", type=int, default=50,
                   help="freeze N once its integer width over the last PATIENCE updates stayed "
                        "the same, or alternated between two neighbours (then the higher) "
                        "[default: 50]")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="start from this float state dict (e.g. float_model.pt of an earlier "
                        "--pretrain-epochs run)")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="float epochs before QAT (AdaQAT as fine-tuning) [default: 0]")
    p.add_argument("--lr", type=float, default=0.02, help="SGD learning rate [default: 0.02]")
    p.add_argument("--lr-schedule", choices=("const", "cosine"), default="const",
                   help="QAT learning-rate schedule (cosine: to 0 over all QAT steps)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="SGD weight decay (not on quantizer clips / steps) [default: 0]")
    p.add_argument("--loss-scale", default="dynamic",
                   help="loss scale: a number (1 = none) or 'dynamic' (start 1024, halve on "
                        "inf/NaN gradients, double after 200 good steps) [default: dynamic]")
    p.add_argument("--batch-size", type=int, default=64, help="global batch (all ranks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", default=None, help="output folder [default: build/adaqat/...]")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_adaqat)


def _adaqat(args) -> int:
    from ..loop import leave_after_distributed_run
    from .train import AdaQatOptions, run

    mac = training_mac(args)
    summary = run(loop_options(args, AdaQatOptions, mac=None if mac == "fp32" else mac))
    leave_after_distributed_run(summary.get("world_size", 1))
    return 0
