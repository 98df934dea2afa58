"""Code-for-code comparison of a fast or device GEMM against the reference, for tests."""

import numpy as np


def assert_codes_equal(got, want, label: str, path: str = "fast", note: str = "") -> None:
    """Assert integer codes ``got`` == ``want``; on failure name ``label``, the number of
    differing codes and the first one (``path``'s code and the reference's, in hex)."""
    g, w = np.asarray(got), np.asarray(want)
    bad = np.argwhere(g != w)
    assert bad.size == 0, (f"{label}: {len(bad)} codes differ, first at {bad[0].tolist()}: "
                           f"{path} {g[tuple(bad[0])]:#x} reference {w[tuple(bad[0])]:#x}"
                           + (f" ({note})" if note else ""))
