"""The ``numba`` backend: fdaref's op table with Numba CPU kernels, plus bit-packed XNOR inference kernels.

``backend`` is the op table (registered as the ``numba`` entry point); ``warmup()`` compiles or loads every
kernel up front. Compiled kernels are cached on disk (``NUMBA_CACHE_DIR``, set to ``.numba_cache`` by the
Makefile), so a second process starts in well under a second.
"""
import os

# Idle OpenMP threads of numba's parallel kernels must sleep, not spin: on a machine with few cores a spinning
# thread steals the time slices BLAS and the other kernel threads need (measured here: a resnet20 training
# step 2.5x slower). libgomp reads this once, when numba first starts its thread pool; a value set by the
# user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import numba  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"the numba backend needs the numba package ({exc}); pip install 'fdaref[numba]'") from exc

import warnings

from numba.core.errors import NumbaIRAssumptionWarning

# Numba's own "internal pedantic check" fires on closures in our kernels while compiling; it reports a
# numba-internal assumption, not a problem in the results (conformance checks those), so keep it quiet.
warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)

from .ops import BACKEND as backend
from .ops import NumbaBackend, warmup

__all__ = ["backend", "NumbaBackend", "warmup"]
