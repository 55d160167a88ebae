"""The ``numpy`` backend: fdaref's op table with fast NumPy kernels (the literal reference is
:data:`fdaref.reference.REFERENCE`; ``fdaref conform --backend numpy`` checks this one against it)."""
from .ops import BACKEND as backend
from .ops import NumpyBackend

__all__ = ["backend", "NumpyBackend"]
