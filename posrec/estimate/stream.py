"""The one streaming loop that `posrec pose`, `posrec extract` and `posrec label` share.

Frames flow ``reader -> prefetch (decoding thread) -> batched estimation -> tracker`` and the
results go on to a :class:`BackgroundWriter` (encoding thread). FFmpeg's decoding and encoding,
OpenCV's colour conversions and drawing, and PyTorch's kernels all release the GIL, so the
stages overlap instead of queueing behind each other. Nothing holds more than a few frames.

The generator to reuse is :func:`track_video`: ``(t, rgb, poses)`` for every frame of a video.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from posrec.errors import PosrecError
from posrec.estimate.tracker import PoseTracker
from posrec.estimate.types import FramePoses

TimedFrame = tuple[float, np.ndarray]  # (t seconds from the video's pts, RGB uint8 (H, W, 3))


@dataclass
class _Failure:
    error: BaseException


def prefetch(items: Iterable, depth: int = 4) -> Iterator:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    For video decoding: the next frames decode while the model runs on this one. Errors in the
    producer are raised in the consumer. Closing the generator (or leaving a ``for`` loop over it
    early) stops the thread before returning, so the source can be closed right after.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as err:  # handed to the consumer, raised there
            q.put(_Failure(err))
        q.put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


class BackgroundWriter:
    """Calls ``write(item)`` for each :meth:`put` item, in order, in one worker thread.

    ``depth`` bounds the queue (put blocks when the writer is that far behind, so memory stays
    flat). The first error in ``write`` is re-raised by the next put and by :meth:`close`, which
    waits for the queue to drain. Use for encoding and drawing overlays behind the pipeline.
    """

    def __init__(self, write: Callable, depth: int = 4):
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(write,), daemon=True)
        self._thread.start()

    def _work(self, write):
        while (item := self._q.get()) is not None:
            if self._error is None:
                try:
                    write(item)
                except BaseException as err:
                    self._error = err

    def put(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(item)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def batched_poses(frames: Iterable[np.ndarray], estimator, batch: int,
                  tracker: PoseTracker | None = None) -> Iterator[tuple[np.ndarray, FramePoses]]:
    """``(rgb, poses)`` for every RGB uint8 (H, W, 3) frame of ``frames``: :func:`batched_timed_poses`
    for frames without timestamps."""
    for _, frame, poses in batched_timed_poses(((0.0, f) for f in frames), estimator, batch, tracker):
        yield frame, poses


def batched_timed_poses(frames: Iterable[TimedFrame], estimator, batch: int,
                        tracker: PoseTracker | None = None) -> Iterator[tuple[float, np.ndarray, FramePoses]]:
    """``(t, rgb, poses)`` for every ``(t, rgb)`` of ``frames``, estimated ``batch`` frames per
    call of ``estimator`` (the estimator contract of DESIGN.md), then tracked in frame order."""
    if batch < 1:
        raise PosrecError(f"batch size must be at least 1, got {batch}")
    pending: list[TimedFrame] = []
    for item in frames:
        pending.append(item)
        if len(pending) == batch:
            yield from _estimate(pending, estimator, tracker)
            pending = []
    yield from _estimate(pending, estimator, tracker)


def _estimate(items: list[TimedFrame], estimator, tracker: PoseTracker | None):
    if not items:
        return
    for (t, frame), poses in zip(items, estimator([f for _, f in items])):
        yield t, frame, tracker.update(poses) if tracker is not None else poses


def track_video(source, estimator, tracker: PoseTracker | None = None, batch: int = 8,
                read_ahead: int = 4) -> Iterator[tuple[float, np.ndarray, FramePoses]]:
    """Stream a video through estimation and tracking: ``(t, rgb, poses)`` per frame.

    Args:
        source: a :class:`posrec.io.video.VideoReader` (its ``timed()`` frames are decoded
            ``read_ahead`` frames ahead in a thread; a camera is read live), or any iterable of
            ``(t seconds, RGB uint8 (H, W, 3))`` pairs (used as given).
        estimator: the estimator contract; ``reset()`` is called first where it exists, and one
            that follows a person (single-pose models on video) runs one frame at a time, since
            each crop depends on the previous frame's result.
        tracker: default a fresh :class:`PoseTracker` at the source's frame rate (30 if unknown).
        batch: frames per estimator call (the fast path for whole-frame models).
    Yields poses with ``track_ids`` filled in, in frame order; closing the generator stops the
    decoding thread.
    """
    if hasattr(estimator, "reset"):
        estimator.reset()
    if getattr(estimator, "follow_person", False):
        batch = 1
    if tracker is None:
        tracker = PoseTracker(fps=getattr(source, "fps", 0) or 30.0)
    live = getattr(source, "is_camera", False)
    frames = source.timed() if hasattr(source, "timed") else source
    if hasattr(source, "timed") and not live and read_ahead > 0:
        frames = prefetch(frames, read_ahead)
    stream = batched_timed_poses(frames, estimator, batch, tracker)
    try:
        yield from stream
    finally:
        stream.close()
        if hasattr(frames, "close"):
            frames.close()  # stops the decoding thread before the caller closes the reader


@contextlib.contextmanager
def closing_stream(frames, camera: bool) -> Iterator:
    """Around a loop over ``frames``: closes them at the end (stopping a decoding thread before
    its reader closes); Ctrl-C ends a camera stream cleanly (the way to stop one) and is
    re-raised for a video file, whose output would be incomplete."""
    try:
        yield frames
    except KeyboardInterrupt:
        if not camera:
            raise
    finally:
        if hasattr(frames, "close"):
            frames.close()


def check_device(device: str) -> str:
    """``device`` if PyTorch can run on it here; PosrecError naming the choices otherwise.

    Accepts "cpu", "cuda", "cuda:N" and "mps"; refuses a GPU the machine does not have.
    """
    import torch

    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise PosrecError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise PosrecError(f"--device {device}: CUDA is not available on this machine "
                              "(no NVIDIA GPU, or a CPU-only PyTorch); use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise PosrecError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise PosrecError(f"--device {device}: Apple MPS is not available on this machine; use --device cpu")
    return device


def check_positive(name: str, value: int | None) -> None:
    """PosrecError unless ``value`` is None or a positive integer (``name`` is the option)."""
    if value is not None and value < 1:
        raise PosrecError(f"{name} must be a positive number, got {value}")
