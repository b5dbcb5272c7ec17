"""Streaming video input: files through OpenCV or PyAV (both FFmpeg), each the other's fallback;
webcams through OpenCV. Writing lives in :mod:`posrec.io.video_write` (re-exported here).

Frames are RGB uint8 (H, W, 3), the estimator contract, in the orientation the video is meant
to be shown in (rotation metadata applied). Every frame carries its timestamp in seconds, from
the container's presentation timestamps (pts), counted from the start of the stream, so a
variable-frame-rate phone clip keeps its real clock. AVI stores no per-frame times (only a frame
rate; FFmpeg's guesses come out of order with B-frames), so there t = frame index / fps. A reader holds one frame at a time (or one
batch), never the whole video.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from posrec.errors import PosrecError
from posrec.io.video_write import VideoEncodeWarning, VideoWriter, quiet_stderr, write_video

try:  # PyAV: threaded FFmpeg decoding with timestamps and rotation; optional at run time
    import av
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    av = None

__all__ = ["VIDEO_EXTS", "VideoDecodeWarning", "VideoEncodeWarning", "VideoReader", "VideoWriter",
           "iter_video_files", "open_camera", "open_video", "write_video"]

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
DECODERS = ("pyav", "opencv")
# Chosen by benchmarks/bench_video.py (decode fps of both readers on the shared clips, RESULTS):
# OpenCV decodes the small clips 2-5 times as fast as PyAV and 1080p about as fast; both give
# the same frames, times and orientation, so PyAV is the one tried second.
DEFAULT_DECODER = "opencv"

# The container's frame count is an estimate for some formats (duration × fps for MKV/WebM), and
# edit lists can drop a frame or two at the end of a valid MP4: only a bigger shortfall is damage.
_COUNT_SLACK = 2
_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


class VideoDecodeWarning(UserWarning):
    """A video ended before the frame count its container announced (truncated or corrupt)."""


class VideoReader:
    """Frames of one video file or camera, decoded one at a time; a single pass.

    Iterating gives RGB uint8 (H, W, 3) frames; :meth:`timed` gives ``(t, frame)`` pairs, ``t``
    the frame's time in seconds (float) from the container's pts, counted from the stream's
    start (a camera: seconds since the first frame, by the wall clock). Both draw from the same
    pass. Attributes:
        source: the file path or "camera N", for messages.
        backend: "pyav" or "opencv", whichever decodes this input.
        fps: the container's average frame rate; 0.0 where unknown. Times come from pts, not fps.
        width, height: the frame size as displayed, in pixels (after rotation).
        rotation: degrees counter-clockwise applied to the decoded pictures (0, 90, 180, 270).
        frame_count: the container's frame count, an estimate; 0 where unknown (cameras).
        frames_read: frames returned so far.
    """

    backend = "base"

    def __init__(self, source: str, fps: float, frame_count: int, is_camera: bool = False) -> None:
        self.source, self.is_camera = source, is_camera
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else 0.0
        self.frame_count = int(frame_count) if frame_count > 0 and not is_camera else 0
        self.rotation = getattr(self, "rotation", 0)
        self.frames_read = 0
        self._decoded = 0  # frames decoded so far, including the one read ahead
        self._open = True
        # Decode the first frame now so that an undecodable input fails at open, not mid-pipeline.
        first = self._next_decoded()
        if first is None:
            self.close()
            raise PosrecError(f"{source}: no frame could be decoded (corrupt, truncated or unsupported video)")
        self._pending: tuple[float, np.ndarray] | None = first
        self.height, self.width = first[1].shape[:2]

    # Backends implement these two.
    def _decode(self) -> tuple[float, np.ndarray] | None:
        """The next (t seconds, RGB frame) or None at the end (or at the first undecodable frame)."""
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    @property
    def duration(self) -> float:
        """Length in seconds from the container's frame count and fps; 0.0 where unknown."""
        return self.frame_count / self.fps if self.fps and self.frame_count else 0.0

    def _next_decoded(self) -> tuple[float, np.ndarray] | None:
        item = self._decode() if self._open else None
        if item is not None:
            self._decoded += 1
            return item
        # End of stream, or the first frame that would not decode. A shortfall against the
        # container's count means a truncated/corrupt file: say so once, keep what was decoded.
        decoded = self._decoded
        if self._open and self.frame_count and 0 < decoded < self.frame_count - _COUNT_SLACK:
            warnings.warn(f"{self.source}: decoding stopped at frame {decoded} of {self.frame_count} "
                          f"(truncated or corrupt video); using the {decoded} frames before it",
                          VideoDecodeWarning, stacklevel=5)
        self.close()
        return None

    def read_timed(self) -> tuple[float, np.ndarray] | None:
        """The next ``(t seconds, RGB uint8 (H, W, 3) frame)``, or None at the end."""
        if self._pending is not None:
            item, self._pending = self._pending, None
        else:
            item = self._next_decoded()
        if item is not None:
            self.frames_read += 1
        return item

    def read(self) -> np.ndarray | None:
        """The next RGB uint8 (H, W, 3) frame, or None at the end."""
        item = self.read_timed()
        return None if item is None else item[1]

    def timed(self) -> Iterator[tuple[float, np.ndarray]]:
        """The remaining frames as ``(t, rgb)``: t in seconds from the container's pts."""
        while (item := self.read_timed()) is not None:
            yield item

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        frame = self.read()
        if frame is None:
            raise StopIteration
        return frame

    def batches(self, n: int) -> Iterator[np.ndarray]:
        """The remaining frames in uint8 arrays (B, H, W, 3), B = n except maybe the last."""
        if n < 1:
            raise ValueError(f"batch size must be at least 1, not {n}")
        while True:
            batch = list(itertools.islice(self, n))
            if not batch:
                return
            yield np.stack(batch)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.source!r}, {self.width}x{self.height}, "
                f"fps={self.fps:.3f}, frame_count={self.frame_count}, frames_read={self.frames_read})")


def _yuv420_to_rgb(frame) -> np.ndarray:
    """A decoded PyAV frame -> RGB uint8. 8-bit 4:2:0 (most video) goes through OpenCV's SIMD
    I420 conversion, measured faster than FFmpeg's swscale (BT.601, as OpenCV's own reader)."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


class PyAVReader(VideoReader):
    """A video file decoded by PyAV with FFmpeg's frame and slice threads (see VideoReader)."""

    backend = "pyav"

    def __init__(self, container, source: str) -> None:
        self._container = container
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding overlaps across cores
        self._frames = container.decode(stream)
        tb = stream.time_base or Fraction(1, 90000)
        self._time_base = float(tb)
        self._start = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        count = stream.frames
        if not count and fps:  # no count in the header (MKV, WebM): estimate it from the duration
            length = stream.duration * self._time_base if stream.duration else (container.duration or 0) / 1e6
            count = round(length * fps)
        self._last_t = -1.0
        self._constant_rate = container.format.name == "avi" and fps > 0  # no pts in AVI
        super().__init__(source, fps, count or 0)

    def _decode(self) -> tuple[float, np.ndarray] | None:
        try:
            frame = next(self._frames)
        except (StopIteration, av.error.FFmpegError, EOFError):
            return None
        if self._decoded == 0:  # the display matrix of the first frame holds for the video
            self.rotation = round((getattr(frame, "rotation", 0) or 0) / 90) % 4 * 90
        rgb = _yuv420_to_rgb(frame)
        if self.rotation:
            rgb = cv2.rotate(rgb, _ROTATE[self.rotation])
        self._last_t = t = _frame_time(None if self._constant_rate or frame.pts is None
                                       else (frame.pts - self._start) * self._time_base,
                                       self._decoded, self._last_t, self.fps)
        return t, rgb

    def _release(self) -> None:
        self._frames = iter(())
        self._container.close()


class OpenCVReader(VideoReader):
    """A file or webcam read by OpenCV's VideoCapture (see VideoReader). Times: the file's pts as
    OpenCV reports them (CAP_PROP_POS_MSEC); for a camera, wall-clock seconds since frame 0."""

    backend = "opencv"

    def __init__(self, cap: cv2.VideoCapture, source: str, is_camera: bool = False) -> None:
        self._cap = cap
        self._t0: float | None = None
        self._last_t = -1.0
        self._constant_rate = source.lower().endswith(".avi") and cap.get(cv2.CAP_PROP_FPS) > 0
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        # OpenCV applies rotation metadata itself (CAP_PROP_ORIENTATION_AUTO, on by default).
        # Its ORIENTATION_META is FFmpeg's clockwise "rotate" tag; ours counts counter-clockwise.
        meta = cap.get(cv2.CAP_PROP_ORIENTATION_META) if hasattr(cv2, "CAP_PROP_ORIENTATION_META") else 0
        self.rotation = -round(meta / 90) % 4 * 90 if math.isfinite(meta) else 0
        super().__init__(source, cap.get(cv2.CAP_PROP_FPS), int(count) if math.isfinite(count) else 0,
                         is_camera)

    def _decode(self) -> tuple[float, np.ndarray] | None:
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        if self.is_camera:
            now = time.monotonic()
            self._t0 = now if self._t0 is None else self._t0
            t = now - self._t0
        else:
            t = _frame_time(None if self._constant_rate else self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000,
                            self._decoded, self._last_t, self.fps)
        self._last_t = t
        code = cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB  # some codecs give grey
        return t, cv2.cvtColor(bgr, code)

    def _release(self) -> None:
        self._cap.release()


def _frame_time(pts_seconds: float | None, index: int, last: float, fps: float) -> float:
    """A frame's time: its pts where usable, else (no pts, AVI, or a pts not after the last
    frame's) frame index / fps, or one frame period after the last frame."""
    if pts_seconds is not None and math.isfinite(pts_seconds) and pts_seconds > last:
        return pts_seconds
    if pts_seconds is None and fps > 0:
        return max(index / fps, last + 1e-6)
    return last + (1 / fps if fps > 0 else 1e-3) if index else 0.0


def _cv_backend() -> int:
    # FFmpeg explicitly: with CAP_ANY, OpenCV's image-sequence backend would also try the name.
    try:
        if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
            return cv2.CAP_FFMPEG
    except AttributeError:
        pass
    return cv2.CAP_ANY


def _open_pyav(path: Path) -> VideoReader | None:
    """A PyAV reader, or None where PyAV is missing or cannot open/decode the file."""
    if av is None:
        return None
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    if not container.streams.video:
        container.close()
        return None
    try:
        return PyAVReader(container, str(path))
    except PosrecError:
        return None  # no frame decoded: let OpenCV try before giving up


def _open_opencv(path: Path) -> VideoReader | None:
    with quiet_stderr():
        cap = cv2.VideoCapture(str(path), _cv_backend())
    if not cap.isOpened():
        cap.release()
        return None
    return OpenCVReader(cap, str(path))


def open_video(path: str | os.PathLike, decoder: str | None = None) -> VideoReader:
    """Open a video file for streaming; PosrecError with a one-line reason if it can't be read.

    ``decoder``: "pyav" or "opencv"; default ``$POSREC_DECODER`` or DEFAULT_DECODER. The other
    one is tried when the chosen one is missing or cannot open the file, so callers never care
    which decodes. The first frame is decoded here, so a file that opens but holds no decodable
    frame fails now. A file that breaks off part way yields the frames before the damage and
    warns once (:class:`VideoDecodeWarning`) with the index of the first frame that did not decode.
    """
    path = Path(path)
    if not path.exists():
        raise PosrecError(f"video not found: {path}")
    if path.is_dir():
        raise PosrecError(f"{path} is a directory, not a video")
    if path.stat().st_size == 0:
        raise PosrecError(f"{path} is empty (0 bytes)")
    decoder = decoder or os.environ.get("POSREC_DECODER") or DEFAULT_DECODER
    if decoder not in DECODERS:
        raise PosrecError(f"unknown video decoder {decoder!r}: use one of {', '.join(DECODERS)}")
    openers = (_open_pyav, _open_opencv) if decoder == "pyav" else (_open_opencv, _open_pyav)
    for opener in openers:
        reader = opener(path)
        if reader is not None:
            return reader
    raise PosrecError(f"cannot open {path} as a video (not a video, an unsupported codec, "
                      "or a truncated file whose index is missing)")


def open_camera(index: int = 0, width: int | None = None, height: int | None = None) -> VideoReader:
    """Stream from webcam ``index``; ``width``/``height`` request a capture size (drivers may
    pick the nearest they support). Same interface as a file reader; frame_count is 0."""
    with quiet_stderr():  # OpenCV logs "[ERROR:0@...] Camera index out of range" from C++
        cap = cv2.VideoCapture(int(index))
        opened = cap.isOpened()
    if not opened:
        cap.release()
        raise PosrecError(f"cannot open camera {index} (no such device, or it is in use)")
    if width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
    if height:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
    return OpenCVReader(cap, f"camera {index}", is_camera=True)


def iter_video_files(paths: str | os.PathLike | Iterable[str | os.PathLike],
                     recursive: bool = False) -> list[Path]:
    """Expand files and folders into the list of video files to process, in a stable order.

    A folder contributes its files with a video extension (VIDEO_EXTS, any case; hidden files
    skipped: they include posrec's own temporary outputs), sorted; with ``recursive`` also those in
    subfolders. Files named explicitly are kept whatever their extension (open_video judges them).
    Duplicates are dropped. PosrecError for a missing path or a folder without videos.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            candidates = p.rglob("*") if recursive else p.iterdir()
            found = sorted(f for f in candidates if f.suffix.lower() in VIDEO_EXTS
                           and not f.name.startswith(".") and f.is_file())
            if not found:
                raise PosrecError(f"no video files ({' '.join(VIDEO_EXTS)}) in {p}")
        elif p.exists():
            found = [p]
        else:
            raise PosrecError(f"video not found: {p}")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out
