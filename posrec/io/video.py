"""Streaming video input (files and webcams) and atomic MP4 output, over OpenCV.

Frames are RGB uint8 (H, W, 3), the estimator contract. A reader holds one frame at a time (or one
batch), never the whole video.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_path

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
# Containers write_video can fill with the avc1/mp4v codecs.
_WRITE_EXTS = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
_FOURCCS = ("avc1", "mp4v")  # H.264 where the OpenCV build has an encoder, else MPEG-4 part 2

# The container's frame count is an estimate for some formats (duration × fps for MKV/WebM), and
# edit lists can drop a frame or two at the end of a valid MP4: only a bigger shortfall is damage.
_COUNT_SLACK = 2


class VideoDecodeWarning(UserWarning):
    """A video ended before the frame count its container announced (truncated or corrupt)."""


def _backend() -> int:
    # FFmpeg explicitly: with CAP_ANY, OpenCV's image-sequence backend would also try the name.
    try:
        if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
            return cv2.CAP_FFMPEG
    except AttributeError:
        pass
    return cv2.CAP_ANY


class VideoReader:
    """Frames of one video file or camera, decoded one at a time.

    Iterate to get RGB uint8 (H, W, 3) frames; a reader is a single pass. Attributes:
        source: the file path or "camera N", for messages.
        fps: frames per second from the container/driver; 0.0 where it is unknown.
        width, height: frame size in pixels (from the first decoded frame, so rotation
            metadata that OpenCV applies is accounted for).
        frame_count: the container's frame count, an estimate; 0 where unknown (cameras).
        frames_read: frames returned so far.
    """

    def __init__(self, cap: cv2.VideoCapture, source: str, is_camera: bool = False) -> None:
        self._cap = cap
        self.source = source
        self.is_camera = is_camera
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else 0.0
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 and not is_camera else 0
        self.frames_read = 0
        self._decoded = 0  # frames decoded so far, including one read ahead
        # Decode the first frame now so that an undecodable input fails at open, not mid-pipeline.
        first = self._decode()
        if first is None:
            self.close()
            raise PosrecError(f"{source}: no frame could be decoded (corrupt, truncated or unsupported video)")
        self._pending: np.ndarray | None = first
        self.height, self.width = first.shape[:2]

    @property
    def duration(self) -> float:
        """Length in seconds from the container's frame count and fps; 0.0 where unknown."""
        return self.frame_count / self.fps if self.fps and self.frame_count else 0.0

    def _decode(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if ok and bgr is not None:
            self._decoded += 1
            if bgr.ndim == 2:  # some drivers/codecs hand back single-channel frames
                return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        # End of stream, or the first frame that would not decode. A shortfall against the
        # container's count means a truncated/corrupt file: say so once, keep what was decoded.
        decoded = self._decoded
        if self.frame_count and 0 < decoded < self.frame_count - _COUNT_SLACK:
            warnings.warn(f"{self.source}: decoding stopped at frame {decoded} of {self.frame_count} "
                          f"(truncated or corrupt video); using the {decoded} frames before it",
                          VideoDecodeWarning, stacklevel=4)
        self.close()
        return None

    def read(self) -> np.ndarray | None:
        """The next RGB uint8 (H, W, 3) frame, or None at the end."""
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            frame = self._decode()
        if frame is not None:
            self.frames_read += 1
        return frame

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
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return (f"VideoReader({self.source!r}, {self.width}x{self.height}, fps={self.fps:.3f}, "
                f"frame_count={self.frame_count}, frames_read={self.frames_read})")


def open_video(path: str | os.PathLike) -> VideoReader:
    """Open a video file for streaming; PosrecError with a one-line reason if it can't be read.

    The first frame is decoded here, so a file that opens but holds no decodable frame fails now.
    A file that breaks off part way yields the frames before the damage and warns once
    (:class:`VideoDecodeWarning`) with the index of the first frame that did not decode.
    """
    path = Path(path)
    if not path.exists():
        raise PosrecError(f"video not found: {path}")
    if path.is_dir():
        raise PosrecError(f"{path} is a directory, not a video")
    if path.stat().st_size == 0:
        raise PosrecError(f"{path} is empty (0 bytes)")
    cap = cv2.VideoCapture(str(path), _backend())
    if not cap.isOpened():
        cap.release()
        raise PosrecError(f"cannot open {path} as a video (not a video, an unsupported codec, "
                          "or a truncated file whose index is missing)")
    return VideoReader(cap, str(path))


def open_camera(index: int = 0, width: int | None = None, height: int | None = None) -> VideoReader:
    """Stream from webcam ``index``; ``width``/``height`` request a capture size (drivers may
    pick the nearest they support). Same interface as a file reader; frame_count is 0."""
    cap = cv2.VideoCapture(int(index))
    if not cap.isOpened():
        cap.release()
        raise PosrecError(f"cannot open camera {index} (no such device, or it is in use)")
    if width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
    if height:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
    return VideoReader(cap, f"camera {index}", is_camera=True)


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


class VideoWriter:
    """Accepts RGB uint8 (height, width, 3) frames for :func:`write_video`."""

    def __init__(self, writer: cv2.VideoWriter, path: Path, size: tuple[int, int], fourcc: str) -> None:
        self._writer = writer
        self.path = path
        self.width, self.height = size
        self.fourcc = fourcc
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame of exactly the size given to write_video."""
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame of shape ({self.height}, {self.width}, 3), "
                             f"got {frame.dtype} {frame.shape}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames_written += 1


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence fd 2 for a moment: FFmpeg prints several error lines when probing an encoder
    that this OpenCV build lacks (avc1 in the pip wheels), which is expected, not a problem."""
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


_working_fourcc: dict[str, str] = {}  # container suffix -> first codec that opened, per process


def _open_writer(tmp: Path, path: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, str]:
    suffix = path.suffix.lower()
    known = _working_fourcc.get(suffix)
    for code in (known,) if known else _FOURCCS:
        with _quiet_stderr():
            vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*code), float(fps), size)
        if vw.isOpened():
            _working_fourcc[suffix] = code
            return vw, code
        vw.release()
    raise PosrecError(f"cannot write {path}: this OpenCV build has no working video encoder "
                      f"(tried {', '.join(_FOURCCS)})")


@contextlib.contextmanager
def write_video(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> Iterator[VideoWriter]:
    """Write a video atomically: ``with write_video("out.mp4", 30.0, (w, h)) as vw: vw.write(rgb)``.

    ``size`` is (width, height) in pixels. Frames go to a temporary file next to ``path`` (same
    extension, so OpenCV picks the same container) that replaces ``path`` only when the block ends
    without error and at least one frame was written. Codec: H.264 ('avc1') where OpenCV has an
    encoder, else MPEG-4 part 2 ('mp4v'). Encoders may round an odd width/height down to even.
    """
    path = Path(path)
    if path.suffix.lower() not in _WRITE_EXTS:
        raise PosrecError(f"cannot write video {path}: use one of {' '.join(_WRITE_EXTS)}")
    if not (math.isfinite(fps) and fps > 0):
        raise PosrecError(f"cannot write video {path}: frame rate must be positive, got {fps}")
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise PosrecError(f"cannot write video {path}: bad frame size {width}x{height}")
    with atomic_path(path) as tmp:
        vw, code = _open_writer(tmp, path, fps, (width, height))
        writer = VideoWriter(vw, path, (width, height), code)
        try:
            yield writer
        finally:
            vw.release()
        if writer.frames_written == 0:
            raise PosrecError(f"cannot write video {path}: no frames were given")
