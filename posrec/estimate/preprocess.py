"""Frame -> model-input resampling that reproduces TensorFlow's ops exactly.

MoveNet's reference pipeline (Google's TF Hub tutorial) feeds the model with
``tf.image.resize_with_pad`` (images, multipose) or ``tf.image.crop_and_resize`` (single-pose
video, following the person), then ``tf.cast(..., tf.int32)``. Both are bilinear samplings that
we compute here with numpy gathers of only the output pixels, so a 1080p frame never gets
converted to float as a whole.

Every function returns the model input (uint8 (h, w, 3)) and a :class:`Window`, the affine map
from the model's normalised output coordinates back to frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """Maps model-normalised (y, x) in [0, 1] to frame pixels: ``px = offset + scale * norm``."""

    y0: float
    x0: float
    height: float  # pixels of the frame covered by the model input's full height
    width: float

    def to_pixels(self, yx: np.ndarray) -> np.ndarray:
        """(..., 2) normalised (y, x) -> (..., 2) pixel (x, y)."""
        y = self.y0 + yx[..., 0] * self.height
        x = self.x0 + yx[..., 1] * self.width
        return np.stack([x, y], -1).astype(np.float32)


def bilinear_taps(frame: np.ndarray, ys: np.ndarray, xs: np.ndarray):
    """What a bilinear sampling of ``frame`` (H, W, 3) at the grid ys (h,) x xs (w,) reads:
    the frame as flat 3-byte pixel records, the flat offsets of the upper and lower rows
    (h, 1) and left and right columns (w,) of each sample's four neighbours (clamped to the
    frame), and the fractional parts (dy (h,), dx (w,))."""
    h, w = frame.shape[:2]
    fy, fx = np.floor(ys), np.floor(xs)
    y0 = np.clip(fy, 0, h - 1).astype(np.intp)[:, None] * w
    y1 = np.clip(np.ceil(ys), 0, h - 1).astype(np.intp)[:, None] * w
    x0 = np.clip(fx, 0, w - 1).astype(np.intp)
    x1 = np.clip(np.ceil(xs), 0, w - 1).astype(np.intp)
    # Gather whole RGB pixels as 3-byte records: far faster than fancy-indexing (N, 3) rows.
    pixels = np.ascontiguousarray(frame).view(np.dtype((np.void, 3))).reshape(-1)
    return pixels, (y0, y1, x0, x1), (ys - fy, xs - fx)


def _sample(frame: np.ndarray, ys: np.ndarray, xs: np.ndarray, y_valid: np.ndarray,
            x_valid: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``frame`` at the grid ys x xs, zero where invalid, truncated to uint8.

    Follows the TF.js CPU kernels (the reference we test against) bit for bit:
    ``top = tl + (tr - tl) * dx``, ``out = top + (bottom - top) * dy`` in double precision,
    stored as float32, then the int32 cast that truncates.
    """
    pixels, (y0, y1, x0, x1), (dy, dx) = bilinear_taps(frame, ys, xs)
    # Rows of W * 3 values, so that every operation runs along contiguous rows (not over a
    # broadcast innermost colour axis of 3), and in place rather than into a new float64 array
    # each: 1.3-1.4x faster (benchmarks/bench_preprocess.py).
    shape = (len(ys), 3 * len(xs))

    def at(rows, cols):
        return np.take(pixels, rows + cols).view(np.uint8).reshape(shape).astype(np.float64)

    tl, tr, bl, br = at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)
    dx = np.repeat(dx, 3)[None, :]
    dy = dy[:, None]
    top = np.subtract(tr, tl, out=tr)  # the same IEEE operations in the same order as TF.js
    top *= dx
    top += tl
    bottom = np.subtract(br, bl, out=br)
    bottom *= dx
    bottom += bl
    out = np.subtract(bottom, top, out=bottom)
    out *= dy
    out += top
    if not (y_valid.all() and x_valid.all()):
        out *= y_valid[:, None] & np.repeat(x_valid, 3)[None, :]
    # float32 rounding first (can land on an integer), then truncation == tf.cast to int32.
    return out.astype(np.float32).astype(np.uint8).reshape(len(ys), len(xs), 3)


def resize_with_pad(frame: np.ndarray, out_h: int, out_w: int) -> tuple[np.ndarray, Window]:
    """``tf.image.resize_with_pad`` (bilinear, half-pixel centres, no antialias), then int cast.

    Args:
        frame: uint8 (H, W, 3) RGB.
    Returns:
        uint8 (out_h, out_w, 3) and the window mapping model output back to frame pixels.
    """
    h, w = frame.shape[:2]
    # TF's size arithmetic is float32; the padding uses the unfloored size.
    f32 = np.float32
    ratio = max(f32(w) / f32(out_w), f32(h) / f32(out_h))
    rh, rw = max(int(np.floor(f32(h) / ratio)), 1), max(int(np.floor(f32(w) / ratio)), 1)
    pad_y = max(int(np.floor((f32(out_h) - f32(h) / ratio) / f32(2))), 0)
    pad_x = max(int(np.floor((f32(out_w) - f32(w) / ratio) / f32(2))), 0)
    # Half-pixel centres: source = (i + 0.5) * in/out - 0.5; below 0 both taps are row 0.
    ys = np.maximum((np.arange(rh) + 0.5) * (h / rh) - 0.5, 0)
    xs = np.maximum((np.arange(rw) + 0.5) * (w / rw) - 0.5, 0)
    resized = _sample(frame, ys, xs, np.ones(rh, bool), np.ones(rw, bool))
    out = np.zeros((out_h, out_w, 3), np.uint8)
    out[pad_y:pad_y + rh, pad_x:pad_x + rw] = resized
    window = Window(-pad_y * h / rh, -pad_x * w / rw, out_h * h / rh, out_w * w / rw)
    return out, window


def crop_and_resize(frame: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, Window]:
    """``tf.image.crop_and_resize`` of one normalised box (y1, x1, y2, x2) to (size, size).

    Samples outside the frame are 0 (TF's extrapolation value); the window follows the
    reference tutorial, which maps the model's [0, 1] onto the box edges.
    """
    h, w = frame.shape[:2]
    # TF receives the box as a float32 tensor; the sampling positions are then computed in double.
    y1, x1, y2, x2 = (float(v) for v in np.asarray(box, np.float32))
    i = np.arange(size, dtype=np.float64)
    ys = y1 * (h - 1) + i * ((y2 - y1) * (h - 1) / (size - 1))
    xs = x1 * (w - 1) + i * ((x2 - x1) * (w - 1) / (size - 1))
    y_valid = (ys >= 0) & (ys <= h - 1)
    x_valid = (xs >= 0) & (xs <= w - 1)
    out = _sample(frame, ys, xs, y_valid, x_valid)
    return out, Window(y1 * h, x1 * w, (y2 - y1) * h, (x2 - x1) * w)


def resize_pad_to_32(frame: np.ndarray, long_side: int = 256) -> tuple[np.ndarray, Window]:
    """MultiPose input as Google's TF.js pose-detection prepares it: the long side scaled to
    ``long_side``, the short side to ``round(long_side * short / long)``, bilinear without
    half-pixel centres (tfjs' default), zero padding at the bottom/right up to multiples of 32.

    Returns uint8 (H', W', 3) with H', W' multiples of 32, and the window back to frame pixels.
    """
    h, w = frame.shape[:2]
    if h >= w:
        rh, rw = long_side, max(int(np.floor(long_side * w / h + 0.5)), 1)  # JS Math.round
    else:
        rh, rw = max(int(np.floor(long_side * h / w + 0.5)), 1), long_side
    ys = np.arange(rh) * (h / rh)  # align_corners=False, half_pixel_centers=False
    xs = np.arange(rw) * (w / rw)
    resized = _sample(frame, ys, xs, np.ones(rh, bool), np.ones(rw, bool))
    ph, pw = -(-rh // 32) * 32, -(-rw // 32) * 32
    out = np.zeros((ph, pw, 3), np.uint8)
    out[:rh, :rw] = resized
    return out, Window(0.0, 0.0, ph * h / rh, pw * w / rw)
