"""``srmac train``: train a model of the registry with every GEMM on emulated SR MACs.

Examples::

    srmac train --model mlp --mac e5m2:e6m5:sr_eager:4 --epochs 1 --limit-train 512
    srmac train --model cnn --mac fp32 --epochs 5            # plain float baseline
    srmac train --model resnet20 --width 0.5 --recipe fp8 --acc fp16 --quant-out e4m3:rn,e5m2:rn
    srmac train --mac e5m2:e6m5:rn --optimizer adam --opt-fmt bf16 --opt-rounding sr --opt-rbits 8
    torchrun --standalone --nproc-per-node 2 -m ref.cli train --model mlp --mac e5m2:e6m5:rn

``srmac train-table``: the results table (models x MACs x seeds), resumable::

    srmac train-table --models mlp --seeds 0,1,2 --epochs 3 --limit-train 12000
    srmac train-table --models mlp --recipe fp8 --hidden 64 --limit-train 10000

:func:`train_options` turns the parsed options into :class:`sim.train.TrainOptions`
(the inverse of :func:`sim.table.command`); :func:`loop_options` is the part
both training verbs share.
"""

from __future__ import annotations

from ref.cli import DEFAULT_MAC, add_mac_arguments, mac_from_args, mac_options_given

from .models import MODELS, image_size, model_names

#: ``--mac`` values meaning plain float layers (as :data:`sim.loop.FLOAT_BASELINE`).
_FLOAT = ("fp32", "float")


def add_training_mac_arguments(parser):
    """The MAC options of the training verbs: ``ref.cli``'s vocabulary, float by default.

    ``--mac SPEC`` or the split flags ``--in/--acc/--rounding/--rbits`` (each
    defaulting to its part of ``e5m2:e6m5:sr_eager:4``) choose the emulated MAC
    of every GEMM; none of them, or ``--mac fp32``, means plain float layers.
    :func:`training_mac` reads them back.
    """
    g = add_mac_arguments(parser, default=DEFAULT_MAC, spec=False)
    g.description = ("the MAC of every emulated GEMM: --mac SPEC, or the split flags (not both), "
                     f"each defaulting to its part of {DEFAULT_MAC}; none of them, or --mac fp32, "
                     "means plain float layers (the baseline)")
    g.add_argument("--mac", metavar="SPEC",
                   help="in:acc:rounding[:r], e.g. e5m2:e6m5:sr_eager:4, or fp32 for float layers "
                        "[default: fp32]")
    return g


def training_mac(args) -> str:
    """``"fp32"`` (float layers) or the spec of the MAC the options describe (one line if bad)."""
    spec, given = getattr(args, "mac", None), mac_options_given(args)
    if spec is not None and spec.strip().lower() in _FLOAT:
        if len(given) > 1:
            raise ValueError(f"--mac {spec} (float layers) and {given[1]} contradict each other: "
                             "drop one")
        return "fp32"
    if not given:
        return "fp32"
    return mac_from_args(args).spec()

_TRAIN_EXAMPLES = """\
examples:
  srmac train --model mlp --mac e5m2:e6m5:sr_eager:4 --epochs 1 --limit-train 512
  srmac train --model cnn --mac fp32 --epochs 5            # plain float baseline
  srmac train --model resnet20 --width 0.5 --mac e5m2:e6m5:sr_eager:4 --limit-train 2000
  srmac train --recipe fp8 --acc fp16 --rounding sr_eager --rbits 4 --quant-out e4m3:rn,e5m2:rn
  srmac train --mac e5m2:e6m5:rn --optimizer adam --opt-fmt bf16 --opt-state-fmt bf16 --opt-rounding sr --opt-rbits 8
  torchrun --standalone --nproc-per-node 2 -m ref.cli train --model mlp --mac e5m2:e6m5:rn
"""

_TABLE_EXAMPLES = """\
examples:
  srmac train-table --models mlp --seeds 0,1,2 --epochs 3 --limit-train 12000
  srmac train-table --models mlp,cnn --macs fp32,e5m2:e6m5:sr_eager:4 --seeds 0
  srmac train-table --models mlp --hidden 64 --recipe fp8 --limit-train 10000   # the FP8 table
"""


def model_help(default: str) -> str:
    small = [n for n in model_names("fashion-mnist") if "imagenet" not in MODELS[n].datasets]
    both = [n for n in model_names("fashion-mnist") if "imagenet" in MODELS[n].datasets]
    images = [n for n in model_names("imagenet") if n not in both]
    return (f"{', '.join(small)}: Fashion-MNIST; {', '.join(both)}: 32x32 inputs, Fashion-MNIST "
            f"padded to 32x32 or --dataset imagenet; {', '.join(images)}: --dataset imagenet "
            f"[default: {default}]")


def add_data_arguments(parser, *, channels_help: str) -> None:
    """The model-shape and data options of both training verbs (read by :func:`loop_options`)."""
    parser.add_argument("--dataset", choices=("fashion-mnist", "imagenet"), default="fashion-mnist",
                        help="imagenet: --data-dir DIR with train/<class>/ and val/<class>/ images "
                             "(any image-folder tree, e.g. CIFAR-10 as PNGs for the 32x32 models)")
    parser.add_argument("--limit-train", type=int, default=None,
                        help="use the first N training samples")
    parser.add_argument("--limit-test", type=int, default=None, help="use the first N test samples")
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden width [default: 256]")
    parser.add_argument("--depth", type=int, default=1, help="MLP hidden layers [default: 1]")
    parser.add_argument("--channels", type=int, default=8, help=channels_help)
    parser.add_argument("--width", type=float, default=1.0,
                        help="width multiplier of resnet20, mobilenet-v2-cifar, resnet18, "
                             "mobilenet-v2 [default: 1.0]")
    parser.add_argument("--image-size", type=int, default=None,
                        help="--dataset imagenet: crop size in pixels [default: the model's, 224, "
                             "or 32 for resnet20 and mobilenet-v2-cifar]")
    parser.add_argument("--workers", type=int, default=None,
                        help="--dataset imagenet: image-decoding processes per rank [default: 4]")
    parser.add_argument("--data-dir", default=None,
                        help="folder of the Fashion-MNIST IDX files "
                             "[default: /usr/share/datasets/fashion-mnist], or the imagenet root")


def loop_options(args, cls, **fixed):
    """``cls`` (a :class:`sim.loop.LoopOptions` subclass) from parsed options; one line if bad.

    An option parsed as None was not given and takes the dataclass default;
    ``fixed`` overrides. ``--image-size`` defaults to the model's own size;
    ``--image-size`` and ``--workers`` with Fashion-MNIST do nothing and are
    refused.
    """
    names = cls.__dataclass_fields__
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    given.update(fixed)
    dataset, model = given.get("dataset", "fashion-mnist"), given.get("model")
    if dataset != "imagenet":
        for name in ("image_size", "workers"):
            if name in given:
                raise ValueError(f"--{name.replace('_', '-')} {given[name]} is for --dataset "
                                 f"imagenet (Fashion-MNIST's 28x28 images are padded to 32x32 for "
                                 "the 32x32 models): drop it")
    elif "image_size" not in given and model in MODELS:
        given["image_size"] = image_size(model)
    return cls(**given)


def train_options(args):
    """The :class:`sim.train.TrainOptions` of parsed ``srmac train`` options (one line if bad).

    ``--recipe fp8`` becomes the GEMM fields of :func:`sim.fp8_config` (its
    accumulator and rounding from ``--acc``, ``--rounding``, ``--rbits``);
    ``--lr`` defaults to the optimizer's (:data:`sim.train.DEFAULT_LR`).
    """
    from .train import DEFAULT_LR, TrainOptions, recipe_fields

    optimizer = args.optimizer
    if args.momentum is not None and optimizer != "sgd":
        raise ValueError(f"--momentum is SGD's; --optimizer {optimizer} has --betas: drop "
                         "--momentum")
    fixed = {"lr": DEFAULT_LR[optimizer]} if args.lr is None else {}
    if args.recipe is None:
        fixed["mac"] = training_mac(args)
    else:
        fixed.update(_recipe(args, recipe_fields))
    return loop_options(args, TrainOptions, **fixed)


def _recipe(args, recipe_fields) -> dict:
    recipe = args.recipe
    for flag, value in (("--mac", args.mac), ("--in", args.in_fmt),
                        ("--mac-bwd-input", args.mac_bwd_input),
                        ("--mac-bwd-weight", args.mac_bwd_weight),
                        ("--quant-weight", args.quant_weight), ("--quant-act", args.quant_act)):
        if value is not None:
            raise ValueError(f"--recipe {recipe} sets the MACs and operand roundings itself "
                             f"(E4M3 forward, E5M2 gradients on E5M3-input backward MACs), so "
                             f"{flag} {value} contradicts it: give only its accumulator and "
                             "rounding (--acc, --rounding, --rbits)")
    mac = mac_from_args(args)  # the split flags: the accumulator and the rounding
    rounding = mac.rounding.value + (f":{mac.rbits}" if mac.rounding.is_sr else "")
    return recipe_fields(recipe, mac.acc_fmt.spec(), rounding, args.quant_grad)


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (Fashion-MNIST or image folders) with every GEMM on the emulated MAC",
        description=(
            "Train a model of the registry with every GEMM (forward, backward to inputs, "
            "backward to weights) run bit-exactly by the golden model: linear layers, "
            "convolutions (grouped and depthwise too) and matmuls. Writes log.csv, curves.png, "
            "model.pt and summary.json (last: a run without it did not finish). Loss scaling "
            "(dynamic by default) keeps small gradients from underflowing in 8-bit formats. Runs "
            "under torchrun (DDP: gloo on CPU, nccl on CUDA)."
        ),
        epilog=_TRAIN_EXAMPLES,
    )
    p.add_argument("--model", choices=tuple(MODELS), default="mlp", help=model_help("mlp"))
    add_data_arguments(p, channels_help="CNN / resnet-small first-layer channels [default: 8]")
    g = add_training_mac_arguments(p)
    g.add_argument("--recipe", choices=("fp8",), default=None,
                   help="fp8: E4M3 weights and activations forward, E5M2 gradients, each GEMM on "
                        "its own MAC (sim.fp8_config); --acc (e6m5 or fp16, ...), --rounding and "
                        "--rbits give the accumulator and rounding of all three "
                        "[default: e6m5, sr_eager, 4]")
    g.add_argument("--mac-bwd-input", default=None, metavar="SPEC",
                   help="MAC of the backward-to-inputs GEMM [default: --mac]")
    g.add_argument("--mac-bwd-weight", default=None, metavar="SPEC",
                   help="MAC of the backward-to-weights GEMM [default: --mac]")
    q = p.add_argument_group("operand and output rounding (emulated GEMMs only)")
    q.add_argument("--quant-weight", default=None, metavar="Q",
                   help="rounding of weights into the GEMM input format: rn, rz, sr:<r>, or "
                        "<fmt>:<rounding> to store them in fmt first [default: rn]")
    q.add_argument("--quant-act", default=None, metavar="Q",
                   help="same for activations [default: rn]")
    q.add_argument("--quant-grad", default=None, metavar="Q",
                   help="same for gradients [default: rn; e5m2:rn with --recipe fp8]")
    q.add_argument("--quant-out", default=None, metavar="FWD[,BWD]",
                   help="round the outputs of every norm, activation, softmax and pooling layer "
                        "to FWD and the gradients flowing back through them to BWD, e.g. "
                        "e4m3:rn,e5m2:rn (none: that direction unchanged) [default: none]")
    o = p.add_argument_group("optimizer (sim.build_optimizer: weights and state stored rounded)")
    o.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd",
                   help="the torch.optim optimizer, wrapped so that it steps float64 copies and "
                        "stores the weights and state rounded [default: sgd]")
    o.add_argument("--lr", type=float, default=None,
                   help="learning rate [default: 0.05 for sgd, 0.001 for adam and adamw]")
    o.add_argument("--lr-schedule", choices=("const", "cosine"), default="const",
                   help="constant rate, or cosine decay to 0 over all steps [default: const]")
    o.add_argument("--momentum", type=float, default=None, help="SGD momentum [default: 0.9]")
    o.add_argument("--betas", default=None, metavar="B1,B2",
                   help="adam/adamw moment decays [default: 0.9,0.999]")
    o.add_argument("--weight-decay", type=float, default=0.0,
                   help="L2 penalty (adamw: decoupled weight decay) [default: 0]")
    o.add_argument("--opt-fmt", default="fp32", metavar="FMT",
                   help="format of the weights after each update, e.g. bf16 [default: fp32]")
    o.add_argument("--opt-state-fmt", "--opt-momentum-fmt", dest="opt_momentum_fmt",
                   default=None, metavar="FMT",
                   help="format of the optimizer state: SGD's momentum, Adam's moments "
                        "[default: --opt-fmt]")
    o.add_argument("--opt-rounding", choices=("rn", "rz", "sr"), default="rn",
                   help="rounding of weights and state [default: rn]")
    o.add_argument("--opt-rbits", type=int, default=None, metavar="R",
                   help="random bits of --opt-rounding sr (1..30)")
    o.add_argument("--opt-kahan", action="store_true",
                   help="Kahan-compensated update: what rounding a weight loses is added to its "
                        "next update")
    o.add_argument("--opt-master", action="store_true",
                   help="keep an fp32 master copy; the model's weights are it rounded to "
                        "--opt-fmt")
    o.add_argument("--loss-scale", default="dynamic",
                   help="loss scale: a number (1 = none) or 'dynamic' (start 1024) "
                        "[default: dynamic]")
    p.add_argument("--epochs", type=int, default=1, help="[default: 1]")
    p.add_argument("--seed", type=int, default=0,
                   help="initial weights, data order and every SR seed [default: 0]")
    p.add_argument("--batch-size", type=int, default=128, help="global batch [default: 128]")
    p.add_argument("--out", default=None,
                   help="output folder [default: build/train/<model>-<mac>-s<seed>]")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda when present [default: auto]")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_train)

    t = sub.add_parser(
        "train-table",
        help="the training results table: models x MACs x seeds, resumable",
        description=(
            "Run a grid of `srmac train` runs that differ only in the MAC (default: fp32, then "
            "E5M2 x E5M2 -> E6M5 with rn, rz, sr_lazy and sr_eager at r = 2, 4, 6, 8; with "
            "--recipe fp8: fp32, then the FP8 recipe with E6M5 and FP16 accumulators and rn, "
            "sr_lazy:4, sr_eager:4), skipping runs already finished with the same options "
            "(checked file by file, so a killed, moved or copied grid resumes without "
            "retraining), and write table.csv, table.md (mean and spread of the test accuracy "
            "over seeds, seconds per epoch, the command of each row) and table.png under --out. "
            "A second grid on the same --out stops with a message."
        ),
        epilog=_TABLE_EXAMPLES,
    )
    t.add_argument("--models", default="mlp,cnn", help="comma-separated [default: mlp,cnn]")
    t.add_argument("--macs", default=None,
                   help="comma-separated MACs (fp32: the float baseline) [default: fp32 and the "
                        "E5M2 x E5M2 -> E6M5 grid]; with --recipe, ACC:ROUNDING items such as "
                        "e6m5:rn or fp16:sr_eager:4 [default: fp32, e6m5 and fp16 x rn, "
                        "sr_lazy:4, sr_eager:4]")
    t.add_argument("--recipe", choices=("fp8",), default=None,
                   help="every emulated row is `srmac train --recipe fp8` with its accumulator "
                        "and rounding (fp32 rows stay the float baseline)")
    t.add_argument("--quant-out", default=None, metavar="FWD[,BWD]",
                   help="output quantizers of every emulated row (srmac train --quant-out)")
    t.add_argument("--seeds", default="0,1,2", help="comma-separated [default: 0,1,2]")
    t.add_argument("--epochs", type=int, default=3, help="[default: 3]")
    t.add_argument("--limit-train", type=int, default=None, help="use the first N training samples")
    t.add_argument("--limit-test", type=int, default=None, help="use the first N test samples")
    t.add_argument("--batch-size", type=int, default=128, help="[default: 128]")
    t.add_argument("--lr", type=float, default=0.05, help="[default: 0.05]")
    t.add_argument("--lr-schedule", choices=("const", "cosine"), default="cosine",
                   help="[default: cosine: a far less noisy final accuracy]")
    t.add_argument("--hidden", type=int, default=256, help="MLP hidden width [default: 256]")
    t.add_argument("--depth", type=int, default=1, help="MLP hidden layers [default: 1]")
    t.add_argument("--channels", type=int, default=8, help="CNN first-layer channels [default: 8]")
    t.add_argument("--width", type=float, default=1.0,
                   help="width multiplier of resnet20 and mobilenet-v2-cifar [default: 1.0]")
    t.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    t.add_argument("--out", default="build/train-table",
                   help="root of the runs and the table [default: build/train-table]")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    t.set_defaults(func=_train_table)


def _train(args) -> int:
    from .loop import leave_after_distributed_run
    from .train import run

    summary = run(train_options(args))
    leave_after_distributed_run(summary["world_size"])
    return 0


def _train_table(args) -> int:
    from .table import TableSpec, aggregate, default_macs, parse_list, run_table, write_table
    from .train import TrainOptions

    base = TrainOptions(epochs=args.epochs, limit_train=args.limit_train,
                        limit_test=args.limit_test, batch_size=args.batch_size, lr=args.lr,
                        lr_schedule=args.lr_schedule, hidden=args.hidden, depth=args.depth,
                        channels=args.channels, width=args.width, data_dir=args.data_dir,
                        device=args.device, quant_out=args.quant_out)
    spec = TableSpec(args.out, models=parse_list(args.models),
                     macs=parse_list(args.macs) if args.macs else default_macs(args.recipe),
                     seeds=parse_list(args.seeds, int), base=base, recipe=args.recipe)
    rows = aggregate(run_table(spec, progress=args.progress))
    paths = write_table(rows, spec.root)
    print((spec.root / "table.md").read_text())
    print("srmac train-table: wrote " + ", ".join(str(p) for p in paths))
    return 0
