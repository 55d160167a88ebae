"""The ``numpy`` backend is the reference itself: fdaref's semantics as an op table."""
from fdaref.reference import REFERENCE as backend

__all__ = ["backend"]
