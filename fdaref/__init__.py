"""fdaref: the golden reference for binary neural networks trained with FDA (Xu et al., NeurIPS 2021).

The semantics live in small modules, one per part of the paper:
``binarize`` (sign, Eq. 1), ``estimators`` (Eqs. 9-10 and the classic surrogates), ``noise`` (Eq. 13),
``quantizer`` (Eq. 14), ``scale`` / ``functional`` (binary conv and linear), ``schedules`` and ``presets``.
"""
from .estimators import estimator_grad, estimator_names, fda, fda_series, fourier_series, register_estimator
from .presets import PRESETS, BinaryOptions, get_preset
from .binarize import sign

__version__ = "0.1.0"

__all__ = ["sign", "fda", "fda_series", "fourier_series", "estimator_grad", "estimator_names",
           "register_estimator", "BinaryOptions", "PRESETS", "get_preset", "__version__"]
