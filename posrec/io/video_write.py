"""Atomic video output: H.264 in MP4 through PyAV's libx264, OpenCV's MPEG-4 Part 2 as a fallback.

H.264 (yuv420p, moov atom at the front of the file) plays in browsers, notebooks and phones;
OpenCV's pip wheels have no H.264 encoder, so its ``mp4v`` output is only the fallback, with one
warning per process. Frames are RGB uint8 (H, W, 3).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_path

try:
    import av
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    av = None

# Containers write_video can fill; faststart (index first) applies to the ISO-BMFF ones.
WRITE_EXTS = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
_FASTSTART_EXTS = (".mp4", ".m4v", ".mov")
# x264 preset, chosen by encode fps at 1080p in benchmarks/bench_video.py (RESULTS): posrec's
# overlays are previews, and every slower preset costs the pipeline more than it gains in size.
DEFAULT_PRESET = "ultrafast"
DEFAULT_CRF = 23  # x264's own default quality
_TIME_BASE = Fraction(1, 90000)  # MPEG's 90 kHz clock: frame times to 11 microseconds
_FOURCCS = ("avc1", "mp4v")  # OpenCV: H.264 where the build has an encoder, else MPEG-4 part 2


class VideoEncodeWarning(UserWarning):
    """H.264 through PyAV is not available: the overlay is written as MPEG-4 Part 2 (mp4v)."""


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence fd 2 for a moment: FFmpeg and OpenCV print their own error lines from C when a
    probe fails (an encoder the build lacks, a camera index that does not exist); the caller
    turns the failure into posrec's one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class VideoWriter:
    """Accepts RGB uint8 (height, width, 3) frames for :func:`write_video`.

    Attributes: path (the final path), width, height (what write() accepts), codec ("h264" or
    the OpenCV fourcc), frames_written.
    """

    codec = "base"

    def __init__(self, path: Path, size: tuple[int, int]) -> None:
        self.path = path
        self.width, self.height = size
        self.frames_written = 0

    def write(self, frame: np.ndarray, t: float | None = None) -> None:
        """Append one RGB uint8 frame of exactly the size given to write_video. ``t``: its time
        in seconds (H.264 keeps it, so a variable-frame-rate input keeps its clock; default and
        mp4v: frame index / fps)."""
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame of shape ({self.height}, {self.width}, 3), "
                             f"got {frame.dtype} {frame.shape}")
        self._encode(frame, t)
        self.frames_written += 1

    def _encode(self, rgb: np.ndarray, t: float | None) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class _H264Writer(VideoWriter):
    codec = "h264"

    def __init__(self, tmp: Path, path: Path, fps: float, size: tuple[int, int], preset: str,
                 crf: int) -> None:
        super().__init__(path, size)
        options = {"movflags": "+faststart"} if path.suffix.lower() in _FASTSTART_EXTS else {}
        self._container = av.open(str(tmp), "w", options=options)
        try:
            rate = Fraction(fps).limit_denominator(1001)
            stream = self._container.add_stream("libx264", rate=rate)
            stream.codec_context.time_base = _TIME_BASE  # fine enough for any frame's own time
            # yuv420p halves the chroma: both sides must be even, so an odd last row/column goes.
            stream.width, stream.height = size[0] - size[0] % 2, size[1] - size[1] % 2
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": preset, "crf": str(crf)}
        except BaseException:
            self._container.close()
            raise
        self._stream, self._period, self._last_pts = stream, 1 / float(rate), -1

    def _encode(self, rgb: np.ndarray, t: float | None) -> None:
        s = self._stream
        # OpenCV's SIMD RGB->I420 is faster than swscale's (benchmarks/bench_video.py).
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb[:s.height, :s.width]), cv2.COLOR_RGB2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        t = self.frames_written * self._period if t is None else t
        frame.pts = self._last_pts = max(round(t / _TIME_BASE), self._last_pts + 1)  # increasing
        frame.time_base = _TIME_BASE
        self._container.mux(s.encode(frame))

    def _close(self) -> None:
        try:
            if self.frames_written:
                self._container.mux(self._stream.encode(None))  # flush the encoder's delay
        finally:
            self._container.close()


class _OpenCVWriter(VideoWriter):
    def __init__(self, writer: cv2.VideoWriter, path: Path, size: tuple[int, int], fourcc: str) -> None:
        super().__init__(path, size)
        self._writer, self.codec = writer, fourcc

    def _encode(self, rgb: np.ndarray, t: float | None) -> None:
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def _close(self) -> None:
        self._writer.release()


_working_fourcc: dict[str, str] = {}  # container suffix -> first codec that opened, per process
_warned_fallback = False


def h264_available() -> bool:
    """True where PyAV is installed with an FFmpeg that has the libx264 encoder."""
    if av is None:
        return False
    try:
        av.codec.Codec("libx264", "w")
    except Exception:  # UnknownCodecError, or an FFmpeg build without it
        return False
    return True


def _open_opencv(tmp: Path, path: Path, fps: float, size: tuple[int, int]) -> _OpenCVWriter:
    suffix = path.suffix.lower()
    known = _working_fourcc.get(suffix)
    for code in (known,) if known else _FOURCCS:
        with quiet_stderr():
            vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*code), float(fps), size)
        if vw.isOpened():
            _working_fourcc[suffix] = code
            return _OpenCVWriter(vw, path, size, code)
        vw.release()
    raise PosrecError(f"cannot write {path}: this OpenCV build has no working video encoder "
                      f"(tried {', '.join(_FOURCCS)})")


def _open_writer(tmp: Path, path: Path, fps: float, size: tuple[int, int], preset: str,
                 crf: int) -> VideoWriter:
    global _warned_fallback
    if h264_available():
        return _H264Writer(tmp, path, fps, size, preset, crf)
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn("PyAV with libx264 is not available (pip install av): writing MPEG-4 Part 2 "
                      "video, which browsers and many phones do not play", VideoEncodeWarning, stacklevel=4)
    return _open_opencv(tmp, path, fps, size)


@contextlib.contextmanager
def write_video(path: str | os.PathLike, fps: float, size: tuple[int, int],
                preset: str = DEFAULT_PRESET, crf: int = DEFAULT_CRF) -> Iterator[VideoWriter]:
    """Write a video atomically: ``with write_video("out.mp4", 30.0, (w, h)) as vw: vw.write(rgb)``.

    ``size`` is (width, height) in pixels of the frames given to ``write``. Frames go to a
    temporary file next to ``path`` that replaces ``path`` only when the block ends without error
    and at least one frame was written. Codec: H.264 (libx264 ``preset``, quality ``crf``,
    yuv420p, faststart for MP4/MOV) through PyAV, else OpenCV's MPEG-4 Part 2 with one
    :class:`VideoEncodeWarning`. H.264 drops an odd last row or column (4:2:0 needs even sizes).
    Frames are timed at a constant ``fps`` unless ``write`` is given each frame's time.
    """
    path = Path(path)
    if path.suffix.lower() not in WRITE_EXTS:
        raise PosrecError(f"cannot write video {path}: use one of {' '.join(WRITE_EXTS)}")
    if not (math.isfinite(fps) and fps > 0):
        raise PosrecError(f"cannot write video {path}: frame rate must be positive, got {fps}")
    width, height = (int(v) for v in size)
    if width < 2 or height < 2:
        raise PosrecError(f"cannot write video {path}: bad frame size {width}x{height}")
    with atomic_path(path) as tmp:
        writer = _open_writer(tmp, path, fps, (width, height), preset, crf)
        try:
            yield writer
        finally:
            writer._close()
        if writer.frames_written == 0:
            raise PosrecError(f"cannot write video {path}: no frames were given")
