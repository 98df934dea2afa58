"""Which BitOPs convention gives the AdaQAT paper's 31.4 Gb for ResNet-18 at W/A 3.84/4.00?

    python3 experiments/resnet18_bitops.py

Counts the MACs of every Linear/Conv2d of our ResNet-18 (sim.zoo, torchvision's layout) on
one 224x224 image, then evaluates BitOPs = sum_l MACs_l * w_l * a_l under several
conventions (first/last layers at 8, 32 or the body's widths; downsample convs in or out;
real or integer widths; MACs or FLOPs), and prints them as a markdown table with the
distance to 31.4 G.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAPER_GBITOPS = 31.4
PAPER_WA = (3.84, 4.00)


def layer_macs() -> list[tuple[str, int]]:
    import torch

    from sim.adaqat.core import BitState, qat_model
    from sim.adaqat.core import layer_macs as count
    from sim.models import build_model

    torch.manual_seed(0)
    model = qat_model(build_model("resnet18"), BitState(8, 8))
    return [(m.name, m.macs) for m in count(model, (1, 3, 224, 224))]


def conventions(layers: list[tuple[str, int]]):
    first, last = layers[0][1], layers[-1][1]
    body = [(n, m) for n, m in layers[1:-1]]
    body_all = sum(m for _, m in body)
    body_nods = sum(m for n, m in body if "downsample" not in n)
    total = first + last + body_all
    w, a = PAPER_WA
    wi, ai = math.ceil(w), math.ceil(a)

    def mean_solve(mean, end_bits):
        # a MAC-weighted mean over all layers with first/last at end_bits: the body's width
        return (mean * total - end_bits * (first + last)) / body_all

    wb8, ab8 = mean_solve(w, 8), mean_solve(a, 8)
    rows = [
        ("body at 3.84/4.00, first/last at 8/8", w * a * body_all + 64 * (first + last)),
        ("body at 4/4 (ceil), first/last at 8/8", wi * ai * body_all + 64 * (first + last)),
        ("body only at 3.84/4.00 (first/last not counted)", w * a * body_all),
        ("body only at 4/4", wi * ai * body_all),
        ("every layer at 3.84/4.00", w * a * total),
        ("every layer at 4/4", wi * ai * total),
        ("body at 3.84/4.00, first/last at 32/32 (float)", w * a * body_all + 1024 * (first + last)),
        ("body at 3.84/4.00 without downsample convs, first/last 8/8",
         w * a * body_nods + 64 * (first + last)),
        ("body at 3.84/4.00, first layer 8/8, classifier not counted", w * a * body_all + 64 * first),
        ("body at 3.84/4.00, first layer W8 x A4 (input at the body's width), last 8/8",
         w * a * body_all + 8 * a * first + 64 * last),
        ("body at 4/4 (ceil), first layer W8 x A4, last 8/8",
         wi * ai * body_all + 8 * ai * first + 64 * last),
        ("every layer's weights at 3.84, activations at 4.00, image input 8 bits",
         w * a * (body_all + last) + w * 8 * first),
        ("3.84/4.00 = MAC-weighted means incl. first/last at 8 (body "
         f"{wb8:.2f}/{ab8:.2f})", wb8 * ab8 * body_all + 64 * (first + last)),
        ("FLOPs (2 per MAC), body 3.84/4.00, first/last 8/8",
         2 * (w * a * body_all + 64 * (first + last))),
    ]
    return dict(first=first, last=last, body=body_all, total=total), rows


def main() -> None:
    layers = layer_macs()
    counts, rows = conventions(layers)
    print(f"ResNet-18, 224x224: {counts['total'] / 1e9:.4f} G MACs (first conv "
          f"{counts['first'] / 1e6:.1f} M, classifier {counts['last'] / 1e6:.3f} M, the other "
          f"{len(layers) - 2} layers {counts['body'] / 1e9:.4f} G)\n")
    print("| convention | BitOPs (G) | vs 31.4 G |")
    print("|---|--:|--:|")
    for text, value in rows:
        g = value / 1e9
        print(f"| {text} | {g:.2f} | {100 * (g / PAPER_GBITOPS - 1):+.1f} % |")


if __name__ == "__main__":
    main()
