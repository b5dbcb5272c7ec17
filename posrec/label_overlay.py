"""The labeller's overlay video: skeletons, track ids and each person's current action label,
drawn a window behind the stream (so each label is known when its frame is drawn) or at once
(the camera's rolling window), and the writer and live display of a labelling run."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from posrec.estimate.types import FramePoses
from posrec.overlay import draw_labels, draw_poses, fit_overlay

DEFAULT_SIZE = "720p"  # the overlay's short side by default: a preview, a third of 1080p's cost

if TYPE_CHECKING:  # the labeller's window classifier: pending windows, run(), current(tid, t)
    from posrec.label import _Classifier


class LabelOverlay:
    """Draws skeletons with each person's current label, ``lag`` seconds behind the stream.

    Writing a file without a live display, resizing, drawing and encoding all run in one
    background thread: each frame goes there as it arrives and waits, at the overlay's size,
    until the main thread has its labels (looked up ``lag`` seconds later) and sends them.
    With ``display`` (``--show``) the main thread resizes and draws, as OpenCV's windows
    live there, and only encoding runs behind.
    """

    def __init__(self, writer, size: tuple[int, int], frame_width: int, lag: float,
                 stride: float, classifier: "_Classifier", display=None):
        from posrec.estimate.stream import BackgroundWriter

        self.writer, self.size, self.scale = writer, size, size[0] / frame_width
        self.lag, self.stride, self.clf, self.display = lag, stride, classifier, display
        self.held: deque = deque()  # (t, poses), with the frame too where the main thread draws
        self.last: FramePoses = FramePoses.empty()
        self.quit = False
        self.seconds = 0.0  # spent on the overlay in the main thread
        self.behind = None if writer is None else BackgroundWriter(
            self._encode if display is not None else self._work, depth=8)  # a few raw frames
        self._waiting: deque = deque()  # the background thread's frames awaiting their labels

    def push(self, t: float, frame: np.ndarray, poses: FramePoses | None, now: float) -> None:
        t0 = time.perf_counter()
        if poses is not None:
            self.last = poses
        if self.display is None:
            self.behind.put(("frame", frame))
            self.held.append((t, self.last))
        else:
            self.held.append((t, fit_overlay(frame, self.size), self.last))
        while self.held and self.held[0][0] <= now - self.lag:
            self._release(self.held.popleft())
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        self.clf.run()
        while self.held:
            self._release(self.held.popleft())
        if self.behind is not None:
            self.behind.close()

    def _labels(self, t: float, poses: FramePoses) -> list:
        if any((s + e) / 2 <= t + self.stride / 2 for _, s, e, _ in self.clf.pending):
            self.clf.run()  # a window this frame's label needs; else keep batching
        return [self.clf.current(int(tid), t) for tid in poses.track_ids]

    def _release(self, held: tuple) -> None:
        """A held frame's labels are known: draw it here, or send them to the thread behind."""
        t, poses = held[0], held[-1]
        labels = self._labels(t, poses)
        if self.display is None:
            self.behind.put(("draw", t, poses, labels))
            return
        frame = _drawn(held[1], poses, labels, self.scale)
        if self.behind is not None:
            self.behind.put((frame, t))
        if not self.display.show(frame):
            self.quit = True

    def _work(self, item: tuple) -> None:
        """The background thread: resize a new frame, or draw and encode the oldest one."""
        if item[0] == "frame":
            self._waiting.append(fit_overlay(item[1], self.size))
        else:
            _, t, poses, labels = item
            self.writer.write(_drawn(self._waiting.popleft(), poses, labels, self.scale), t)

    def _encode(self, item: tuple) -> None:
        self.writer.write(*item)


def _drawn(frame: np.ndarray, poses: FramePoses, labels: list, scale: float) -> np.ndarray:
    draw_poses(frame, poses, scale=scale)
    return draw_labels(frame, poses, labels, scale=scale)


class OverlayContext:
    """The overlay writer (or none) and the live display (or none) of a labelling run."""

    def __init__(self, out, stem, fps, reader, size_spec, write_video, show):
        self.out, self.stem, self.fps, self.reader = out, stem, fps, reader
        self.size_spec, self.write_video, self.show = size_spec, write_video, show
        self._cm = None

    def __enter__(self):
        from posrec.pose import _Display, overlay_size

        size = overlay_size(self.size_spec, self.reader.width, self.reader.height)
        writer = None
        if self.out is not None and self.write_video:
            from posrec.io.video_write import write_video

            self._cm = write_video(self.out / f"{self.stem}_label.mp4", self.fps, size)
            writer = self._cm.__enter__()
        self.display = _Display(self.stem) if self.show else None
        return writer, size, self.display

    def __exit__(self, *exc):
        if self.display is not None:
            self.display.close()
        if self._cm is not None:
            return self._cm.__exit__(*exc)
        return False
