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

import logging
from pathlib import Path

_KERNEL_MODULES = ("_bitpack", "_elementwise", "_layers", "_noise_act")


def _kernels_cached() -> bool:
    """Whether numba's on-disk cache holds kernels of every kernel module (else the first calls compile)."""
    if os.environ.get("FDAREF_NUMBA_NOCACHE") == "1":
        return False
    from numba.core.config import CACHE_DIR
    root = Path(CACHE_DIR) if CACHE_DIR else Path(__file__).parent / "__pycache__"
    return all(any(root.glob(f"**/{m}.*.nbi")) for m in _KERNEL_MODULES)


def notice_first_compile() -> None:
    """Log (INFO; the CLI prints it) that the kernels are about to be compiled, when they are not cached."""
    if not _kernels_cached():
        logging.getLogger(__name__).info("numba: compiling the kernels on first use (about a minute, once; they "
                                         "are cached on disk afterwards, see NUMBA_CACHE_DIR)")


notice_first_compile()  # before the silence of a first-time compile

from .ops import BACKEND as backend
from .ops import NumbaBackend, warmup

__all__ = ["backend", "NumbaBackend", "warmup"]
