"""``srmac adaqat``: learn weight/activation bit-widths during QAT (AdaQAT, arXiv 2404.16876).

Examples::

    srmac adaqat --model mlp --lambda 0.01 --epochs 3 --limit-train 6000
    srmac adaqat --model cnn --fixed 4/4 --epochs 3          # fixed-width QAT baseline
    srmac adaqat --model resnet-small --pretrain-epochs 2 --epochs 3   # from a float model
    srmac adaqat --model cnn --per-layer --bit-every 4 --init build/adaqat/.../float_model.pt
    torchrun --nproc-per-node 8 -m ref.cli adaqat --model resnet18 --dataset imagenet \
        --data-dir /data/imagenet --init resnet18_float.pt --batch-size 256 --epochs 30
"""

from __future__ import annotations

_EXAMPLES = """\
examples:
  srmac adaqat --model mlp --lambda 0.01 --epochs 3 --limit-train 6000
  srmac adaqat --model cnn --fixed 4/4 --epochs 3          # fixed-width QAT baseline
  srmac adaqat --model cnn --mac e5m2:e6m5:sr_eager:4 --epochs 1 --limit-train 2000
"""


def register(sub) -> None:
    p = sub.add_parser(
        "adaqat",
        help="adaptive bit-width QAT (AdaQAT), network-wide or per layer, or a fixed-width "
             "QAT baseline; Fashion-MNIST or ImageNet-style folders, torchrun/DDP",
        description=(
            "Quantization-aware training with LSQ quantizers whose weight and activation "
            "bit-widths N_w, N_a are learned: finite-difference task-loss gradient plus lambda "
            "times the gradient of N_w*N_a, frozen once they stop moving, then fine-tuning. "
            "--per-layer gives every layer its own pair. Runs under torchrun (DDP). Writes "
            "bits.csv (widths per step), bits.png, layers.csv, summary.json, summary.csv and "
            "model.pt."
        ),
        epilog=_EXAMPLES,
    )
    p.add_argument("--model", choices=("mlp", "cnn", "resnet-small", "resnet18", "mobilenet-v2"),
                   default="mlp", help="mlp, cnn, resnet-small: Fashion-MNIST only [default: mlp]")
    p.add_argument("--dataset", choices=("fashion-mnist", "imagenet"), default="fashion-mnist",
                   help="imagenet: --data-dir DIR with train/<class>/ and val/<class>/ images")
    p.add_argument("--lambda", dest="lam", type=float, default=0.01,
                   help="weight of the hardware cost N_w*N_a [default: 0.01]")
    p.add_argument("--epochs", type=int, default=2, help="QAT epochs (exploration + fine-tuning)")
    p.add_argument("--fixed", default=None, metavar="W/A",
                   help="fixed-width QAT baseline, e.g. 4/4 (no bit-width learning)")
    p.add_argument("--per-layer", action="store_true",
                   help="learn one N_w, N_a per layer (finite differences: 2 extra forward "
                        "passes per layer per update)")
    p.add_argument("--bit-every", type=int, default=1, metavar="K",
                   help="update the widths every K-th step only [default: 1]")
    p.add_argument("--mac", default=None, metavar="SPEC",
                   help="run the quantized layers' GEMMs (forward and backward) on this emulated "
                        "MAC, e.g. e5m2:e6m5:sr_eager:4 (slow; groups=1 convs only) "
                        "[default: float]")
    p.add_argument("--init-bits", type=float, default=8.0, help="initial N_w and N_a [default: 8]")
    p.add_argument("--min-bits", type=float, default=2.0, help="lower bound of N [default: 2]")
    p.add_argument("--max-bits", type=float, default=8.0, help="upper bound of N [default: 8]")
    p.add_argument("--bit-lr", type=float, default=0.5, help="bit-width learning rate [default: 0.5]")
    p.add_argument("--patience", type=int, default=50,
                   help="freeze N once its last PATIENCE updates span < --freeze-tol [default: 50]")
    p.add_argument("--freeze-tol", type=float, default=0.3, help="[default: 0.3 bit]")
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
                   help="SGD weight decay (not on LSQ step sizes) [default: 0]")
    p.add_argument("--batch-size", type=int, default=64, help="global batch (all ranks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=int, default=None, help="use the first N training samples")
    p.add_argument("--limit-test", type=int, default=None, help="use the first N test samples")
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden width [default: 256]")
    p.add_argument("--channels", type=int, default=8,
                   help="CNN/resnet-small base channels [default: 8]")
    p.add_argument("--width", type=float, default=1.0,
                   help="resnet18/mobilenet-v2 width multiplier [default: 1.0]")
    p.add_argument("--image-size", type=int, default=224,
                   help="imagenet crop size in pixels [default: 224]")
    p.add_argument("--workers", type=int, default=4,
                   help="imagenet image-decoding processes per rank [default: 4]")
    p.add_argument("--data-dir", default=None,
                   help="Fashion-MNIST IDX folder, or the imagenet root (train/, val/)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", default=None, help="output folder [default: build/adaqat/...]")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_adaqat)


def _adaqat(args) -> int:
    from .adaqat_train import AdaQatOptions, run
    from .train import leave_after_distributed_run

    fields = AdaQatOptions.__dataclass_fields__
    summary = run(AdaQatOptions(**{k: v for k, v in vars(args).items() if k in fields}))
    leave_after_distributed_run(summary.get("world_size", 1))
    return 0
