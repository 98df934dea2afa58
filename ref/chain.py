"""MAC chains: ``dot`` and ``matmul`` (contract section 4), the readable reference path.

Output ``C[i, j]`` is the chain ``z <- round(z + A[i, k] * B[k, j])`` for
``k = 0 .. K-1`` starting from ``C_init[i, j]`` (default +0). Its random bits
come from the generator of PE ``(i, j)`` (:mod:`ref.prng`), stepped once per
MAC. :func:`matmul_reference` is the readable specification: the loop runs
over ``k``; each step is one vectorised MAC over all ``M x N`` outputs.
The public :func:`ref.matmul` / :func:`ref.dot` (:mod:`ref.dispatch`) run the
compiled paths (:mod:`ref.fast` on the CPU, :mod:`ref.fast.device` on a GPU),
which give the same codes; :func:`prepare` checks the arguments for all of
them.
"""

from __future__ import annotations

from . import prng
from .backend import ops_for
from .checks import check_broadcasts_to, integer_array, reserve, shape_of
from .codec import _out_of_range
from .config import MacConfig, check_config
from .mac import mac_step, product, split_rand, unpack_inputs

__all__ = ["matmul_reference", "dot_reference", "prepare", "dot_operands"]


def _check_2d(name, shape):
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D code array, got shape {shape}")


#: Peak bytes of a product per element of A and B (formats of up to 16 bits
#: decode through a table, wider ones through int64 temporaries), per output
#: and per random word, over both paths (the reference loop: int64 operands
#: unpacked once, the MAC temporaries of each step; ref.fast: decoded and
#: padded operands). Measured with tracemalloc on NumPy: the peaks are 30-75 % of
#: the estimate (tests/test_strict_inputs.py checks that they stay below it).
_OPERAND_BYTES = {True: 96, False: 176}
_OUTPUT_BYTES = 400
_RAND_BYTES = 16


def matmul_bytes(cfg: MacConfig, M: int, K: int, N: int, with_rand: bool = False) -> int:
    """Estimated peak working set of :func:`matmul` (either path), in bytes."""
    jb = max(1, min(256, N))  # ref.fast pads B to whole column tiles of min(256, N)
    n_pad = -(-N // jb) * jb
    per_operand = _OPERAND_BYTES[cfg.in_fmt.width <= 16]
    return (per_operand * (M * K + K * n_pad) + _OUTPUT_BYTES * M * N
            + (_RAND_BYTES * M * N * K if with_rand else 0))


def prepare(A, B, cfg: MacConfig, C=None, *, seed: int = 0, rand=None, state=None,
            seed_states: bool = True):
    """Check :func:`matmul_reference`'s arguments (shared with :mod:`ref.fast`).

    Returns ``(ops, A, B, z, rand, gen)``: int64 code arrays, the (M, N)
    initial accumulator codes, the checked random words (or None) and the
    (M, N) generator states (None unless SR without ``rand``). With
    ``seed_states=False`` the states that would come from ``seed`` are left
    None too (the CPU kernels seed them themselves, :mod:`ref.fast.prologue`).
    """
    cfg = check_config(cfg, "ref.matmul")
    seed = prng.check_seed(seed)
    ops = ops_for(A, B, C, rand, state)
    sa, sb = shape_of(A, "A"), shape_of(B, "B")
    _check_2d("A", sa)
    _check_2d("B", sb)
    M, K = sa
    K2, N = sb
    if K != K2:
        raise ValueError(f"shape mismatch: A is {M}x{K} but B is {K2}x{N} (inner sizes must agree)")
    if C is not None:
        check_broadcasts_to(shape_of(C, "C"), (M, N), "C")
    if rand is not None:
        if not cfg.is_sr:
            raise ValueError(f"rand given but rounding {cfg.rounding!r} uses no random bits")
        if shape_of(rand, "rand") != (M, N, K):
            raise ValueError(f"rand must have shape ({M}, {N}, {K}), got {shape_of(rand, 'rand')}")
    reserve(matmul_bytes(cfg, M, K, N, rand is not None), f"ref.matmul of {M}x{K} by {K}x{N}",
            getattr(ops, "device", None))
    A, B = integer_array(ops, A, "A"), integer_array(ops, B, "B")
    cfg.in_fmt.check_codes(A)
    cfg.in_fmt.check_codes(B)
    if C is None:
        z = ops.full((M, N), 0)
    else:
        C = integer_array(ops, C, "C")
        cfg.acc_fmt.check_codes(C)
        z = ops.copy(ops.broadcast(C, ops.full((M, N), 0))[0])

    if rand is not None:
        rand = integer_array(ops, rand, "rand")
        bad = _out_of_range(rand, 1 << cfg.rand_bits)
        if bad is not None:
            raise ValueError(f"random word {bad} is out of range: rand words must be in [0, 2**{cfg.rand_bits})")
    gen = None
    if cfg.is_sr and rand is None:
        if state is not None:
            gen = prng.check_states(ops, state, (M, N))
        elif seed_states:
            ii = ops.reshape(ops.arange(M), (M, 1))
            jj = ops.reshape(ops.arange(N), (1, N))
            gen = prng.seed_state(ops, seed, ii, jj)
            gen = ops.broadcast(gen, ops.full((M, N), 0))[0]

    return ops, A, B, z, rand, gen


def matmul_reference(A, B, cfg: MacConfig, C=None, *, seed: int = 0, rand=None, state=None,
                     return_state: bool = False):
    """Emulated ``C + A @ B`` on codes, one MAC chain per output.

    Parameters
    ----------
    A : (M, K) int array of ``cfg.in_fmt`` codes.
    B : (K, N) int array of ``cfg.in_fmt`` codes.
    C : (M, N) accumulator codes (or a scalar code), default +0.
    seed : base seed of the PE generators (SR modes).
    rand : optional (M, N, K) random words (``cfg.rand_bits`` bits each) that
        replace the generators, as a hardware test bench would drive them.
    state : optional (M, N) generator states to continue from (tiling);
        overrides ``seed``.
    return_state : also return the (M, N) generator states after the chains.
    """
    ops, A, B, z, rand, gen = prepare(A, B, cfg, C, seed=seed, rand=rand, state=state)
    K = A.shape[1]
    ua = unpack_inputs(ops, A, cfg.in_fmt)
    ub = unpack_inputs(ops, B, cfg.in_fmt)
    mask = (1 << cfg.rand_bits) - 1
    for k in range(K):
        col = tuple(x[:, k : k + 1] for x in ua)
        row = tuple(x[k : k + 1, :] for x in ub)
        prod = product(ops, col, row)
        R = Bx = None
        if cfg.is_sr:
            if rand is not None:
                word = rand[:, :, k]
            else:
                gen = prng.step(gen)
                word = gen & mask
            R, Bx = split_rand(cfg, word)
        z = mac_step(ops, cfg, z, prod, R, Bx)
    if return_state:
        return z, gen
    return z


def dot_operands(a, b, z=None, rand=None):
    """The arguments of a dot product as those of a ``1 x 1`` matmul: ``(A, B, C, rand)``.

    ``a``, ``b``: 1-D code arrays of equal length; ``z``: the initial
    accumulator code or None; ``rand``: length-n random words or None.
    """
    ops = ops_for(a, b, z, rand)
    a, b = integer_array(ops, a, "a"), integer_array(ops, b, "b")
    if len(tuple(a.shape)) != 1 or tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"dot needs two 1-D arrays of equal length, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.shape[0]
    C = None
    if z is not None:
        z = integer_array(ops, z, "z")
        if len(tuple(z.shape)) > 1 or (z.shape and z.shape[0] != 1):
            raise ValueError(f"z must be one accumulator code, got shape {tuple(z.shape)}")
        C = ops.reshape(z, (1, 1))
    R = None
    if rand is not None:
        rand = integer_array(ops, rand, "rand")
        if tuple(rand.shape) != (n,):
            raise ValueError(f"rand must have shape ({n},) (one word per MAC), got {tuple(rand.shape)}")
        R = ops.reshape(rand, (1, 1, n))
    return ops.reshape(a, (1, n)), ops.reshape(b, (n, 1)), C, R


def dot_reference(a, b, cfg: MacConfig, z=None, *, seed: int = 0, rand=None):
    """The chain ``z <- round(z + a[k] * b[k])`` over 1-D code arrays (PE (0, 0)), by the
    reference loop. ``rand``, if given, is a length-n array of random words. Returns a 0-d
    code. :func:`ref.dot` gives the same code, faster."""
    cfg = check_config(cfg, "ref.dot")
    A, B, C, R = dot_operands(a, b, z, rand)
    return matmul_reference(A, B, cfg, C, seed=seed, rand=R)[0, 0]
