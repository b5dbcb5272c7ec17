"""Still images in and out, always as RGB uint8 (H, W, 3), the estimator's frame format."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

_JPEG_MAGIC = b"\xff\xd8\xff"


def _to_uint8(img: np.ndarray, path: Path) -> np.ndarray:
    """Scale 16-bit and float samples to 0..255."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        # 65535 / 257 = 255 exactly, so full scale maps to full scale.
        return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if img.dtype.kind == "f":  # float TIFF/EXR: taken as 0..1
        return (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise PosrecError(f"cannot read {path}: unsupported sample type {img.dtype}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Greyscale becomes three equal channels; an alpha channel is composited over white (a cut-out
    person on white looks like a studio photo to the estimator, whereas the colour under
    transparent pixels is arbitrary); 16-bit samples are scaled to 8 bits. JPEG EXIF orientation
    is applied, as photo viewers do. PosrecError for a missing, empty or undecodable file.
    """
    path = Path(path)
    if not path.exists():
        raise PosrecError(f"image not found: {path}")
    if path.is_dir():
        raise PosrecError(f"{path} is a directory, not an image")
    try:
        # Through bytes, not cv2.imread: imread silently fails on non-ASCII paths on Windows.
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise PosrecError(f"cannot read {path}: {e.strerror or e}") from None
    if data.size == 0:
        raise PosrecError(f"{path} is empty (0 bytes)")
    # IMREAD_COLOR applies EXIF orientation but drops alpha and depth, which JPEGs don't have;
    # everything else is read unchanged so that alpha and 16-bit samples are handled below.
    is_jpeg = data[:3].tobytes() == _JPEG_MAGIC
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise PosrecError(f"cannot read {path}: not an image, or an unsupported or corrupt image file")
    img = _to_uint8(img, path)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    channels = img.shape[2]
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        rgb = img[:, :, 2::-1].astype(np.float32)
        return (rgb * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    if channels == 2:  # grey + alpha (rare; OpenCV usually expands it to 4 channels)
        grey = img[:, :, :1].astype(np.float32)
        alpha = img[:, :, 1:2].astype(np.float32) / 255.0
        out = (grey * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
        return np.repeat(out, 3, axis=2)
    raise PosrecError(f"cannot read {path}: unsupported image with {channels} channels")


def write_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Write RGB uint8 (H, W, 3) (or greyscale (H, W)) atomically; the format follows the
    extension (IMAGE_EXTS). ``quality`` is the JPEG/WebP quality, 0..100."""
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise PosrecError(f"cannot write image {path}: use one of {' '.join(IMAGE_EXTS)}")
    bgr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    params = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    try:
        ok, buf = cv2.imencode(ext, bgr, params)
    except cv2.error as e:
        raise PosrecError(f"cannot write image {path}: {str(e).strip().splitlines()[-1]}") from None
    if not ok:
        raise PosrecError(f"cannot write image {path}: encoding failed")
    with atomic_write(path, "wb") as f:
        f.write(buf.tobytes())
