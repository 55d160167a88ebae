"""2-D convolution (cross-correlation, groups = 1) with constant padding, fast (the ``numpy`` backend).

Algorithm: an explicit im2col built from strided window views (one per kernel tap) of the padded input in
channel-major layout (C, N, Hp, Wp), then ONE BLAS GEMM via ``np.tensordot`` per product. dx is a GEMM
into column space followed by a scatter-add over the kh*kw kernel taps (Python loops over taps and batch
chunks only, never over pixels).

Speed (measured on the project's 2-core CPU box, where whole-layer temporaries fall out of cache and numpy
pays ~250 ns per contiguous run of a strided copy or add):
- the batch is processed in chunks whose columns fit :data:`CHUNK_BYTES`, so each chunk's im2col stays in
  cache between its copy and its GEMMs;
- for stride (1, 1) ("flat" mode) the padded chunk is flattened per channel to (C, nb*Hp*Wp) and the
  output is computed at EVERY flat position p (pixel (y, x) of image n sits at p = n*Hp*Wp + y*Wp + x):
  a tap's window is then the single contiguous run flat[c, off : off + nb*Hp*Wp]. Positions outside the
  valid Ho x Wo block are computed and thrown away in the forward; their upstream gradient is set to 0,
  so they add nothing to dw and dx. Inputs with non-finite values, and strided convs, use exact windows
  (an inf read by a thrown-away position must not turn a finite dw into NaN through 0 * inf).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from fdaref._validate import check_grad
from fdaref.functional._geometry import Pair
from fdaref.functional.conv import check_conv_args


# Working-set budget of one batch chunk's im2col (bytes); see the module docstring.
CHUNK_BYTES = 1 << 22


class _Layout:
    """Window geometry of one conv call; see the module docstring for the two modes."""

    def __init__(self, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
                 out: Pair, finite: bool) -> None:
        _, _, h, w = x_shape
        self.kernel, self.stride, self.padding, self.dilation, self.out = kernel, stride, padding, dilation, out
        self.hp, self.wp = h + 2 * padding[0], w + 2 * padding[1]
        self.flat = finite and stride == (1, 1)
        kh, kw = kernel
        self.offsets = [(i, j, i * dilation[0] * self.wp + j * dilation[1]) for i in range(kh) for j in range(kw)]
        self.tail = self.offsets[-1][2] if self.flat else 0  # flat windows run past the last image

    def grid(self, nb: int) -> tuple[int, ...]:
        """Shape of the output positions of a chunk of nb images: (nb*Hp*Wp,) flat, else (nb, Ho, Wo)."""
        return (nb * self.hp * self.wp,) if self.flat else (nb,) + self.out

    def valid(self, ye: np.ndarray) -> np.ndarray:
        """(lead, nb, Ho, Wo) view of the valid positions of ``ye`` (lead, *grid)."""
        if not self.flat:
            return ye
        lead = ye.shape[0]
        return ye.reshape(lead, -1, self.hp, self.wp)[:, :, :self.out[0], :self.out[1]]

    def padded(self, x: np.ndarray, pad_value: float) -> np.ndarray:
        """(C, nb*Hp*Wp + tail): ``x`` (nb, C, H, W) padded with ``pad_value``, channel-major, flattened."""
        nb, c, h, w = x.shape
        ph, pw = self.padding
        buf = np.empty((c, nb * self.hp * self.wp + self.tail), dtype=x.dtype)
        if ph or pw or self.tail:
            buf.fill(pad_value)
        self.image(buf, nb)[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
        return buf

    def image(self, buf: np.ndarray, nb: int) -> np.ndarray:
        """(C, nb, Hp, Wp) view of a padded buffer."""
        return buf[:, :nb * self.hp * self.wp].reshape(buf.shape[0], nb, self.hp, self.wp)

    def window(self, buf: np.ndarray, nb: int, i: int, j: int, off: int) -> np.ndarray:
        """View (C, *grid) of the padded buffer: the elements tap (i, j) multiplies, per output position."""
        if self.flat:
            return buf[:, off:off + nb * self.hp * self.wp]
        (sh, sw), (dh, dw), (ho, wo) = self.stride, self.dilation, self.out
        img = self.image(buf, nb)
        return img[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]

    def columns(self, x: np.ndarray, pad_value: float) -> np.ndarray:
        """im2col (C, kh, kw, *grid) of the chunk ``x`` (nb, C, H, W)."""
        nb, c = x.shape[:2]
        buf = self.padded(x, pad_value)
        cols = np.empty((c,) + self.kernel + self.grid(nb), dtype=x.dtype)
        for i, j, off in self.offsets:
            cols[:, i, j] = self.window(buf, nb, i, j, off)
        return cols

    def chunk(self, c: int, itemsize: int) -> int:
        """Images per batch chunk."""
        per_image = c * self.kernel[0] * self.kernel[1] * int(np.prod(self.grid(1))) * itemsize
        return max(1, CHUNK_BYTES // max(1, per_image))


def _finite(*arrays: np.ndarray) -> bool:
    """True when every array is finite (a sum is cheap and conservative: overflow just means 'exact')."""
    with np.errstate(all="ignore"):
        return all(bool(np.isfinite(np.sum(a))) for a in arrays)


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], *, stride: Pair, padding: Pair,
                   dilation: Pair, pad_value: float) -> np.ndarray:
    """Cross-correlation out[n, o, y, x] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, y*sh + i*dh, x*sw + j*dw].

    x: (N, C_in, H, W); w: (C_out, C_in, kh, kw); b: (C_out,) or None; all one float dtype (kept).
    ``xpad`` is ``x`` padded by ``padding`` on each side with the constant ``pad_value`` (0, -1 or +1,
    SEMANTICS 5). Returns (N, C_out, Ho, Wo), Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1 (same for Wo).
    """
    stride, padding, dilation, pv, out = check_conv_args(x, w, b, stride, padding, dilation, pad_value)
    n, c = x.shape[:2]
    o = w.shape[0]
    lay = _Layout(x.shape, w.shape[2:], stride, padding, dilation, out, _finite(x))
    y = np.empty((n, o) + out, dtype=x.dtype)
    nb = lay.chunk(c, x.itemsize)
    for n0 in range(0, n, nb):
        cols = lay.columns(x[n0:n0 + nb], pv)
        ye = np.tensordot(w, cols, axes=3)  # one GEMM over C_in*kh*kw -> (C_out, *grid)
        y[n0:n0 + nb] = lay.valid(ye).transpose(1, 0, 2, 3)
    if b is not None:
        y += b.reshape(1, o, 1, 1)
    return y


def conv2d_backward(g: np.ndarray, x: np.ndarray, w: np.ndarray, *, has_bias: bool, stride: Pair,
                    padding: Pair, dilation: Pair, pad_value: float
                    ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(dx, dw, db) of :func:`conv2d_forward` for the upstream gradient g (N, C_out, Ho, Wo).

    dw[o, c, i, j] = sum_{n,y,x} g[n, o, y, x] xpad[n, c, y*sh + i*dh, x*sw + j*dw];  db = sum_{n,y,x} g;
    dx = the interior of the scatter-add of (w^T g) over the taps. The padding is a constant, so it
    receives no gradient (but does enter dw when ``pad_value`` != 0). db is None unless ``has_bias``.
    All results have the dtype of x; shapes of x, w and (C_out,).
    """
    stride, padding, dilation, pv, out = check_conv_args(x, w, None, stride, padding, dilation, pad_value)
    n, c, h, w_ = x.shape
    o = w.shape[0]
    check_grad(g, x, (n, o, out[0], out[1]))
    lay = _Layout(x.shape, w.shape[2:], stride, padding, dilation, out, _finite(x, w, g))
    ph, pw = padding
    dx = np.empty_like(x)
    dw = np.zeros_like(w)
    nb = lay.chunk(c, x.itemsize)
    for n0 in range(0, n, nb):
        xs, gs = x[n0:n0 + nb], g[n0:n0 + nb]
        m = xs.shape[0]
        # Upstream gradient on the output grid (C_out, *grid), 0 at the thrown-away positions.
        ge = np.zeros((o,) + lay.grid(m), dtype=x.dtype)
        lay.valid(ge)[...] = gs.transpose(1, 0, 2, 3)
        cols = lay.columns(xs, pv)
        # (C_in, kh, kw, C_out), i.e. cols ge^T: 1.5x faster than ge cols^T with OpenBLAS at these shapes
        dw += np.tensordot(cols, ge, axes=(list(range(3, cols.ndim)), list(range(1, ge.ndim)))).transpose(3, 0, 1, 2)
        del cols
        dcols = np.tensordot(w, ge, axes=([0], [0]))  # (C_in, kh, kw, *grid)
        dbuf = np.zeros((c, m * lay.hp * lay.wp + lay.tail), dtype=x.dtype)
        for i, j, off in lay.offsets:
            # One tap's window never overlaps itself, so the in-place add through the view is exact.
            win = lay.window(dbuf, m, i, j, off)
            win += dcols[:, i, j]
        dx[n0:n0 + nb] = lay.image(dbuf, m)[:, :, ph:ph + h, pw:pw + w_].transpose(1, 0, 2, 3)
    db = g.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
