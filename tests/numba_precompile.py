"""Fill numba's on-disk cache with the kernels the test suite uses (run by conftest.py in the background).

warmup() covers every op for both dtypes; the XNOR conv also specialises per lane width (8 / 16 / 32 / 64
bits, by the channel count) and per driver (serial, parallel), which the packed-kernel tests exercise and
which cost most of numba's compile time. Nothing here is checked: the tests check the same calls."""
from __future__ import annotations

import numpy as np

from fdaref.backends.numba import backend as NB
from fdaref.backends.numba import ops, warmup


def _xnor_kernels() -> None:
    rng = np.random.default_rng(0)
    geom = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), pad_value=0.0)
    for parallel in (False, True):
        ops.XNOR_PAR_MIN = 0 if parallel else 1 << 62
        for c in (1, 9, 17, 33):                       # the four lane widths
            wp = NB.pack_signs(np.where(rng.standard_normal((3, c, 3, 3)) > 0, 1.0, -1.0), axis=1, zero=-1)
            layer = NB.prepare_xnor_conv2d(wp, channels=c, **geom)
            for n_b in (1, 3):                         # planes split and images split
                x = rng.standard_normal((n_b, c, 7, 6))
                for dt in (np.float32,) if parallel else (np.float32, np.float64):   # as the tests
                    layer.sign_conv(x.astype(dt), zero=-1.0)
                    NB.sign_xnor_conv2d(x.astype(dt), wp, zero=-1.0, **geom)
                xp = NB.pack_signs(x, axis=1, zero=-1.0)
                layer.conv(xp)
                NB.xnor_conv2d(xp, wp, channels=c, **geom)


if __name__ == "__main__":
    warmup()
    _xnor_kernels()
