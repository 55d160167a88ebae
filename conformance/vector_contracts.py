"""Each op's contract in words, for the golden vectors' manifest (so an implementer never reads Python).

``CONTRACTS[op]`` says what the inputs are (in positional order), what the keyword parameters mean, what the
outputs are (in order) and the conventions that decide the values. ``CONVENTIONS`` holds what every op shares.
The texts restate docs/SEMANTICS.md and :mod:`fdaref.optable`; when those change, this file changes with them
(``tests/test_vectors.py`` checks that every op has a contract naming all of its inputs and outputs).
"""
from __future__ import annotations

from typing import Any

CONVENTIONS: dict[str, str] = {
    "arrays": "every array is C-order (row-major, last index fastest), little-endian; a 0-d array (shape []) "
              "holds exactly one element",
    "images": "images are NCHW (batch, channels, height, width); conv weights (C_out, C_in, kh, kw); "
              "linear weights (out, in); linear inputs (B, in)",
    "pairs": "stride, padding, dilation and kernel are [height, width] pairs of ints",
    "dtypes": "float inputs are in the exported dtype; labels are int64; packed words uint64; a result must "
              "have the dtype given as result_dtype of its output (float outputs: the exported dtype)",
    "expected": "expected float outputs are float64 values of the reference computed on float64 copies of the "
                "given inputs (so rounding the inputs never counts against an implementation)",
    "none": "an input or output listed with key null is absent (no bias, no noise module): there is no array",
    "backward": "backward ops take the upstream gradient g first and return the gradients of the array "
                "inputs in order",
    "sign": "sign(x) = +1 if x > 0, -1 if x < 0, and `zero` at x == 0 (both +0 and -0); NaN stays NaN; "
            "subnormals are ordinary nonzero numbers",
    "bit_packing": "bit j (value 1 << j) of word w holds element 64*w + j of the packed axis; a set bit means "
                   "sign -1; pack_signs leaves the unused high bits of the last word 0, and the XNOR ops ignore "
                   "whatever those bits hold (some vectors set them)",
    "special_values": "NaN propagates through every float op (relu, prelu and pooling forward keep it; a window "
                      "holding a NaN is NaN); every surrogate is NaN at NaN; fda and sign_swish are NaN at "
                      "+-inf, the clipped estimators 0 there; the fda clip is compared in the input's dtype "
                      "(a float32 x equal to float32(clip) keeps its value)",
    "noise_rows": "layout 'weight': a (C_out, ...) tensor is C_out rows of d = product of the other dims "
                  "(C-order flattening); layout 'activation': (B, C, H, W) is B*H*W rows of d = C, one row "
                  "per pixel (element [b, c, h, w] is entry c of row (b*H + h)*W + w), and (B, in) is B rows "
                  "of d = in",
    "noise_module": "e(t) = relu(t W1) W2 + eta(t) per row t (a row vector of length d), W1 (d, m), W2 (m, d); "
                    "eta_kind 'sin': a*sin(t), 'linear': a*t, 'none': 0; relu'(0) = 0",
}

_FDA = ("fda: (4*omega/pi) * sum_{i=0}^{n} cos((2i+1)*omega*x), n+1 terms (n inclusive), times 0 where "
        "|x| > clip when clip is not null (|x| == clip keeps its value); params {n, omega, clip}. "
        "Closed form sin(2(n+1)t) / (2 sin t) with t = omega*x, limit (n+1)(-1)^k at t = k*pi; in float32 "
        "reduce t modulo pi (in double) before taking sines, or |omega x| up to 1e4 loses the phase")
_ESTIMATORS = ("estimator names: ste: 1; clipped_ste: 1 where |x| <= 1 else 0; approx_sign: 2 - 2|x| where "
               "|x| <= 1 else 0; sign_swish (param beta): beta*(2 - beta*x*tanh(beta*x/2)) / (1 + cosh(beta*x)); "
               "tanh (param beta): beta*(1 - tanh(beta*x)^2); " + _FDA)
_CONV_GEOMETRY = ("cross-correlation (no kernel flip), groups 1: y[n, o, i, j] = b[o] + sum_{c, p, q} "
                  "xp[n, c, i*sh + p*dh, j*sw + q*dw] * w[o, c, p, q], xp = x padded by padding[0] rows and "
                  "padding[1] columns on each side with the constant pad_value; Ho = (H + 2 ph - dh (kh - 1) - 1) "
                  "// sh + 1, likewise Wo")
_POOL = "windows of `kernel` every `stride`, `padding` on each side; Ho = (H + 2 ph - kh) // sh + 1"


def _c(inputs: dict[str, str], kwargs: dict[str, str], outputs: dict[str, str], conventions: str = "") -> dict[str, Any]:
    return {"inputs": inputs, "kwargs": kwargs, "outputs": outputs, "conventions": conventions}


_NOISE_KW = {"layout": "'weight' or 'activation' (see conventions.noise_rows)",
             "eta_kind": "'sin', 'linear' or 'none'", "a": "the shortcut's factor"}

CONTRACTS: dict[str, dict[str, Any]] = {
    "sign": _c({"x": "any shape"}, {"zero": "sign(0): -1, 0 or +1"}, {"y": "shape of x"},
               "see conventions.sign; exact"),
    "surrogate": _c({"x": "any shape"}, {"estimator": "name, see conventions", "params": "object of the "
                    "estimator's parameters"}, {"grad": "d sign/dx at x, shape of x"}, _ESTIMATORS),
    "noise_forward": _c({"t": "(C_out, ...) or (B, C[, H, W])", "w1": "(d, m)", "w2": "(m, d)"}, _NOISE_KW,
                        {"e": "e(t) of every row, placed back in the shape of t"}, "Eq. 13; see conventions.noise_module"),
    "noise_backward": _c({"g": "shape of t", "t": "as noise_forward", "w1": "(d, m)", "w2": "(m, d)"}, _NOISE_KW,
                         {"dt": "shape of t", "dw1": "(d, m)", "dw2": "(m, d)"},
                         "vector-Jacobian products of e with upstream g; h = t W1; dh = (g W2^T) * [h > 0]; "
                         "dt = dh W1^T + g * eta'(t); dW1 = sum over rows t^T dh; dW2 = sum over rows relu(h)^T g"),
    "quantize_forward": _c({"t": "as noise_forward", "w1": "(d, m) or null (no module)", "w2": "(m, d) or null"},
                           dict(_NOISE_KW, alpha="weight of the module", zero="sign(0)",
                                training="true: training forward; false: eval"),
                           {"z": "shape of t"},
                           "Eq. 14: z = sign(t) + alpha * e(t) when training and the module is present and "
                           "alpha != 0; otherwise z = sign(t) exactly (eval never evaluates the module)"),
    "quantize_backward": _c({"g": "shape of t", "t": "as noise_forward", "w1": "(d, m) or null", "w2": "(m, d) or null"},
                            dict(_NOISE_KW, alpha="weight of the module", estimator="surrogate name",
                                 params="the surrogate's parameters"),
                            {"dt": "shape of t", "dw1": "(d, m), null without a module",
                             "dw2": "(m, d), null without a module"},
                            "dt = g * surrogate(t) + alpha * (noise_backward dt); dw1, dw2 = alpha * (noise_backward "
                            "dw1, dw2). " + _ESTIMATORS),
    "weight_scale": _c({"w": "(C_out, C_in, kh, kw) or (out, in)"}, {"mode": "'channel', 'layer' or 'none'"},
                       {"s": "channel: mean |w| over all axes but 0, shape (C_out, 1, ...) (same rank as w); "
                             "layer: mean |w| of the whole tensor, shape (1, 1, ...); none: ones of that shape"}),
    "conv2d_forward": _c({"x": "(N, C_in, H, W)", "w": "(C_out, C_in, kh, kw)", "b": "(C_out,) or null"},
                         {"stride": "pair", "padding": "pair", "dilation": "pair", "pad_value": "0, -1 or +1"},
                         {"y": "(N, C_out, Ho, Wo)"}, _CONV_GEOMETRY),
    "conv2d_backward": _c({"g": "(N, C_out, Ho, Wo)", "x": "(N, C_in, H, W)", "w": "(C_out, C_in, kh, kw)"},
                          {"has_bias": "whether db is returned", "stride": "pair", "padding": "pair",
                           "dilation": "pair", "pad_value": "0, -1 or +1"},
                          {"dx": "(N, C_in, H, W)", "dw": "(C_out, C_in, kh, kw); the padded values count",
                           "db": "(C_out,) = sum of g over N, Ho, Wo; null when has_bias is false"},
                          "gradients of conv2d_forward; no gradient flows into the padding constant. " + _CONV_GEOMETRY),
    "linear_forward": _c({"x": "(B, in)", "w": "(out, in)", "b": "(out,) or null"}, {},
                         {"y": "(B, out) = x w^T + b"}),
    "linear_backward": _c({"g": "(B, out)", "x": "(B, in)", "w": "(out, in)"}, {"has_bias": "whether db is returned"},
                          {"dx": "(B, in) = g w", "dw": "(out, in) = g^T x", "db": "(out,) = sum of g over B, or null"}),
    "batch_norm_forward": _c({"x": "(B, C) or (B, C, H, W)", "gamma": "(C,)", "beta": "(C,)",
                              "running_mean": "(C,)", "running_var": "(C,)"},
                             {"training": "batch statistics (true) or running ones (false)",
                              "momentum": "running update weight", "eps": "added to the variance"},
                             {"y": "shape of x", "mean": "(C,) mean used", "invstd": "(C,) 1/sqrt(var + eps) used",
                              "running_mean": "(C,) updated", "running_var": "(C,) updated"},
                             "over every axis but 1; training: y from the biased batch variance, running update "
                             "new = (1 - momentum) old + momentum batch with the UNBIASED variance; eval: the running "
                             "statistics are used and returned unchanged"),
    "batch_norm_backward": _c({"g": "shape of x", "x": "as batch_norm_forward", "gamma": "(C,)", "mean": "(C,)",
                               "invstd": "(C,)"}, {"training": "mean / invstd depend on x (true) or are constants"},
                              {"dx": "shape of x", "dgamma": "(C,)", "dbeta": "(C,)"}),
    "relu_forward": _c({"x": "any shape"}, {}, {"y": "max(x, 0); NaN stays NaN"}),
    "relu_backward": _c({"g": "shape of x", "x": "any shape"}, {}, {"dx": "g where x > 0, else 0"}),
    "prelu_forward": _c({"x": "(B, C, ...)", "slope": "(1,) or (C,) along axis 1"}, {},
                        {"y": "x where x > 0, else slope * x; NaN stays NaN"}),
    "prelu_backward": _c({"g": "shape of x", "x": "(B, C, ...)", "slope": "(1,) or (C,)"}, {},
                         {"dx": "shape of x", "dslope": "shape of slope: sum of g * x where x <= 0"}),
    "max_pool2d_forward": _c({"x": "(N, C, H, W)"}, {"kernel": "pair", "stride": "pair", "padding": "pair"},
                             {"y": "(N, C, Ho, Wo)"}, _POOL + "; padding counts as -inf; a window holding a NaN "
                             "is NaN"),
    "max_pool2d_backward": _c({"g": "(N, C, Ho, Wo)", "x": "(N, C, H, W)"},
                              {"kernel": "pair", "stride": "pair", "padding": "pair"}, {"dx": "(N, C, H, W)"},
                              _POOL + "; each window's gradient goes to its FIRST maximal element in row-major "
                              "window order (ties)"),
    "avg_pool2d_forward": _c({"x": "(N, C, H, W)"}, {"kernel": "pair", "stride": "pair", "padding": "pair"},
                             {"y": "(N, C, Ho, Wo)"}, _POOL + "; zero padding counts in the divisor kh*kw"),
    "avg_pool2d_backward": _c({"g": "(N, C, Ho, Wo)", "x": "(N, C, H, W)"},
                              {"kernel": "pair", "stride": "pair", "padding": "pair"}, {"dx": "(N, C, H, W)"},
                              _POOL + "; divisor kh*kw"),
    "cross_entropy_forward": _c({"logits": "(B, C)", "labels": "(B,) int64 class indices"},
                                {"label_smoothing": "s"},
                                {"loss": "0-d: mean over the batch of -sum_c q_c log softmax(logits)_c"},
                                "q = (1 - s) onehot(label) + s / C"),
    "cross_entropy_backward": _c({"g": "0-d upstream gradient", "logits": "(B, C)", "labels": "(B,) int64"},
                                 {"label_smoothing": "s"}, {"dlogits": "(B, C) = g (softmax - q) / B"}),
    "pack_signs": _c({"x": "any shape, no NaN"}, {"axis": "the packed axis (negative counts from the end)",
                                                  "zero": "sign(0): -1 or +1"},
                     {"words": "uint64: the other axes in their order, then a LAST axis of ceil(C / 64) words, "
                               "C = x.shape[axis]"}, "see conventions.bit_packing; bit-exact"),
    "xnor_conv2d": _c({"x_packed": "(N, H, W, words): the activations' C axis packed",
                       "w_packed": "(C_out, kh, kw, words): the weights' C_in axis packed"},
                      {"channels": "C, the unpacked channel count", "stride": "pair", "padding": "pair",
                       "dilation": "pair", "pad_value": "0, -1 or +1: the value of padded positions"},
                      {"y": "int32 (N, C_out, Ho, Wo): conv2d_forward of the +-1 tensors, exactly"},
                      "unpack with conventions.bit_packing (set bit = -1, clear = +1), then " + _CONV_GEOMETRY),
    "xnor_linear": _c({"x_packed": "(B, words)", "w_packed": "(out, words)"}, {"features": "in, the unpacked length"},
                      {"y": "int32 (B, out): x w^T of the +-1 matrices, exactly"}, "see conventions.bit_packing"),
    "sum_to_shape": _c({"x": "any shape, broadcast from `shape`"},
                       {"shape": "the target shape: x.shape with leading axes removed and some axes of size 1"},
                       {"y": "shape `shape`: x summed over its leading axes and over every axis that is 1 in "
                             "`shape` but not in x (undoing numpy broadcasting)"}),
}
