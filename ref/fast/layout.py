"""Constants shared by the fast kernels and their Python wrappers (no numba import)."""

# rounding ids
RN, RZ, SR_LAZY, SR_EAGER = 0, 1, 2, 3

# Layout of the int64 parameter vector P (formats and mode, read once per tile).
(P_MODE, P_R, P_W, P_MAN, P_EFMAX, P_BIAS, P_SUB, P_SPEC, P_EMIN, P_MAXCODE, P_OVF,
 P_INFVAL, P_NANVAL, P_RMASK, P_EMAX, P_EXTRA, P_NPARAMS) = range(17)
# specials ids
SPEC_IEEE, SPEC_FN, SPEC_NONE = 0, 1, 2
# input class bits
C_NAN, C_INF, C_ZERO = 1, 2, 4
# decoded exponent of a zero (or NaN / infinity) operand: far below every exponent of the formats
# the narrow kernels take (|e| < 2**20), so a product with it needs no zero test there (a sum of
# two stays above their NO_EXP, -2**24); the wide kernels test the significand instead
ZERO_EXP = -(1 << 22)
