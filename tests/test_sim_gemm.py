"""sim/gemm.py's code reshuffles: im2col, padding and zero-stuffing move codes unchanged.

The layer tests (test_sim_layers.py) check whole convolutions bit for bit
against an oracle built on ``F.unfold`` of values; these check the reshuffles
alone, against torch's own float64 operations on the same codes, on every
kernel / stride / dilation mix (one of them wrong would misplace codes).
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from sim.gemm import conv_input_grad_codes, out_size, pad_codes, unfold_codes

SHAPES = [(h, w, kh, kw, sh, sw, dh, dw)
          for h, w, kh, kw, sh, sw, dh, dw in itertools.product(
              [5, 8], [6, 9], [1, 3], [2, 3], [1, 2], [1, 3], [1, 2], [1, 2])
          if (kh - 1) * dh + 1 <= h and (kw - 1) * dw + 1 <= w]


def codes(*shape, seed=0):
    """int64 codes up to 2**32 - 1 (FP32's): exact in float64, not in float32."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 1 << 32, shape, generator=g, dtype=torch.int64)


def test_unfold_codes_is_f_unfold_in_int64():
    for h, w, kh, kw, sh, sw, dh, dw in SHAPES:
        x = codes(2, 3, h, w)
        want = F.unfold(x.double(), (kh, kw), dilation=(dh, dw), stride=(sh, sw))
        n, ckk, length = want.shape
        want = want.transpose(1, 2).reshape(n * length, ckk).long()
        got = unfold_codes(x, (kh, kw), stride=(sh, sw), dilation=(dh, dw))
        assert got.dtype == torch.int64
        assert torch.equal(got, want), (h, w, kh, kw, sh, sw, dh, dw)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_pad_codes_copies_codes(mode):
    x = codes(2, 3, 5, 6)
    pads = (1, 2, 2, 1)
    want = F.pad(x.double(), pads, mode="constant" if mode == "zeros" else mode).long()
    assert torch.equal(pad_codes(x, pads, mode), want)


def test_input_gradient_stuffing_is_zero_insertion_and_padding():
    """The stuffed, padded gradient: ``s - 1`` zero codes between the gradients, ``d (k - 1)``
    before, and after that the input rows the forward stride dropped."""
    for h, w, kh, kw, sh, sw, dh, dw in SHAPES:
        p, q = out_size(h, kh, sh, 0, dh), out_size(w, kw, sw, 0, dw)
        g = codes(2, 4, p, q, seed=1)
        up = torch.zeros((2, 4, (p - 1) * sh + 1, (q - 1) * sw + 1), dtype=torch.int64)
        up[:, :, ::sh, ::sw] = g
        lo_h, lo_w = dh * (kh - 1), dw * (kw - 1)
        extra_h = h - ((p - 1) * sh + 1 + lo_h)
        extra_w = w - ((q - 1) * sw + 1 + lo_w)
        want = F.pad(up.double(), (lo_w, lo_w + extra_w, lo_h, lo_h + extra_h)).long()
        got = conv_input_grad_codes(g, (h, w), (kh, kw), stride=(sh, sw), dilation=(dh, dw))
        assert torch.equal(got, want), (h, w, kh, kw, sh, sw, dh, dw)
        # a stride-1 convolution over it with the dilated kernel gives the input's size
        assert out_size(got.shape[2], kh, 1, 0, dh) == h and out_size(got.shape[3], kw, 1, 0, dw) == w
