"""Per-person skeleton tracks of a streaming video, cut into the windows a recogniser sees.

:class:`TrackStore` keeps every tracked person's keypoints with the frame times (skeletons
only: an hour of video with a few people is tens of MB). :class:`WindowCutter` emits a window
of ``length`` seconds every ``stride`` seconds of each track as soon as the track has reached
its end, so windows are classified while the video streams; at the end it adds the windows a
short or ending track still needs. :func:`window_annotation` resamples one window to the
model's frame rate by the frame times (a 60 fps phone clip and a 12 fps clip both work) and maps
the joints into the model's layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posrec.data.pipeline import InputSpec
from posrec.estimate.types import FramePoses

MIN_PRESENT = 0.5  # a window where the person is there in fewer of its frames is not classified


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)   # indices into TrackStore.times
    keypoints: list[np.ndarray] = field(default_factory=list)  # (17, 2) pixels each
    scores: list[np.ndarray] = field(default_factory=list)     # (17,)


class TrackStore:
    """Every tracked person's COCO-17 keypoints over the estimated frames."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tracks: dict[int, _Track] = {}

    def add(self, t: float, poses: FramePoses) -> list[int]:
        """Record one estimated frame at time ``t``; returns the track ids seen in it."""
        i = len(self.times)
        self.times.append(float(t))
        seen = []
        for p, tid in enumerate(poses.track_ids):
            if tid < 0:
                continue
            tr = self.tracks.setdefault(int(tid), _Track())
            tr.frames.append(i)
            tr.keypoints.append(poses.keypoints[p])
            tr.scores.append(poses.scores[p])
            seen.append(int(tid))
        return seen

    def span(self, tid: int) -> tuple[float, float]:
        tr = self.tracks[tid]
        return self.times[tr.frames[0]], self.times[tr.frames[-1]]

    def arrays(self, tid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """times (n,), keypoints (n, 17, 2), scores (n, 17) of one track."""
        tr = self.tracks[tid]
        t = np.asarray(self.times, np.float64)[tr.frames]
        return t, np.asarray(tr.keypoints, np.float32), np.asarray(tr.scores, np.float32)

    def dense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """keypoint (M, T, 17, 2), keypoint_score (M, T, 17), track_ids (M,) over all estimated
        frames, longest track first; zeros where a person is absent (the dataset file)."""
        order = sorted(self.tracks, key=lambda k: (-len(self.tracks[k].frames),
                                                   self.tracks[k].frames[0]))
        T = len(self.times)
        kp = np.zeros((len(order), T, 17, 2), np.float32)
        sc = np.zeros((len(order), T, 17), np.float32)
        for m, tid in enumerate(order):
            tr = self.tracks[tid]
            if tr.frames:
                kp[m, tr.frames] = np.asarray(tr.keypoints)
                sc[m, tr.frames] = np.asarray(tr.scores)
        return kp, sc, np.asarray(order, np.int64)


class WindowCutter:
    """Windows ``(track_id, start, end)`` of ``length`` seconds every ``stride`` seconds of
    each track. Tracks shorter than ``min_track`` seconds get none (spurious detections)."""

    def __init__(self, length: float, stride: float, min_track: float = 0.5):
        self.length, self.stride, self.min_track = length, stride, min_track
        self.next_start: dict[int, float] = {}
        self.last_end: dict[int, float] = {}

    def update(self, store: TrackStore, tids: list[int], t: float) -> list[tuple[int, float, float]]:
        """Windows completed by the tracks ``tids`` seen at time ``t``."""
        out = []
        for tid in tids:
            start = self.next_start.setdefault(tid, store.span(tid)[0])
            while start + self.length <= t + 1e-9:
                out.append((tid, start, start + self.length))
                self.last_end[tid] = start + self.length
                start += self.stride
            self.next_start[tid] = start
        return out

    def flush(self, store: TrackStore) -> list[tuple[int, float, float]]:
        """At the end of the video: one padded window for each track shorter than a window,
        and a last window ending with each track that outlived its last full window (at its
        last frame's timestamp: a variable-frame-rate clip has no reliable frame duration)."""
        out = []
        for tid in store.tracks:
            first, last = store.span(tid)
            if last - first < self.min_track:
                continue
            end = self.last_end.get(tid)
            if end is None:
                out.append((tid, first, min(first + self.length, max(last, first + 1e-3))))
            elif last - end > self.stride / 2:
                out.append((tid, max(first, last - self.length), last))
        return out


def window_annotation(store: TrackStore, tid: int, start: float, end: float, spec: InputSpec,
                      img_shape: tuple[int, int], frame_dt: float) -> dict | None:
    """One window of a track as an annotation dict in the model's layout and frame rate:
    ``keypoint`` (1, n, V, 2), n = ``spec.clip_len`` for a full window (fewer for a short track:
    the pipeline pads it), or None when the person is missing from most of the window.

    Each model frame takes the track's nearest frame in time; one further than ``frame_dt``
    (the interval of estimated frames, with slack) counts as missing.
    """
    from posrec.skeleton import convert_layout

    fps = spec.fps or 30.0
    n = max(1, min(spec.clip_len, int(np.floor((end - start) * fps + 1e-6)) + 1))
    targets = start + np.arange(n) / fps
    t, kp, sc = store.arrays(tid)
    j = np.clip(np.searchsorted(t, targets), 1, len(t) - 1) if len(t) > 1 else np.zeros(n, int)
    if len(t) > 1:
        j = np.where(np.abs(t[j - 1] - targets) <= np.abs(t[j] - targets), j - 1, j)
    present = np.abs(t[j] - targets) <= frame_dt
    if present.mean() < MIN_PRESENT:
        return None
    k = np.where(present[:, None, None], kp[j], 0)[None]
    s = np.where(present[:, None], sc[j], 0)[None]
    if spec.layout != "coco17":
        k, s = convert_layout(k, s, "coco17", spec.layout)
    return {"frame_dir": f"track{tid}_{start:.2f}", "keypoint": k.astype(np.float32),
            "keypoint_score": s.astype(np.float32), "img_shape": tuple(img_shape),
            "total_frames": n, "fps": fps, "layout": spec.layout}
