"""The end-to-end labeller: video in, who does what and when out.

``frames (decoded ahead) -> estimator (MultiPose by default) -> tracker -> per-person skeleton
tracks -> windows (seconds, resampled to the model's frame rate) -> recogniser (batched across
people and windows) -> calibrated per-window probabilities -> per-person timeline``.

Frames are never all in memory: the overlay video is drawn a little behind the stream (a
window's half plus one stride, so each person's label is known when their frame is drawn) and
only those frames are held; the skeletons of the whole video are kept (small). Times come from
the video's own timestamps.

Outputs, in one run directory (default ``label_out/<video stem>/``): ``timeline.csv`` /
``timeline.json`` (track id, start, end, label, score), ``windows.csv`` (every classified
window with its probabilities), ``skeletons.pkl`` (the video's skeleton dataset file),
``<stem>_label.mp4`` (overlay: skeletons, ids, each person's current label and score),
``timeline.png``, and ``label.json`` (settings and summary, written last: a run directory
without it is unfinished).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from posrec.action_model import DEFAULT_MODEL, ActionModel, load_action_model
from posrec.errors import PosrecError
from posrec.estimate.types import FramePoses
from posrec.label_overlay import DEFAULT_SIZE as DEFAULT_OVERLAY_SIZE
from posrec.label_overlay import LabelOverlay, OverlayContext
from posrec.windows import TrackStore, WindowCutter, window_annotation

NO_ACTION = "no action"


@dataclass
class LabelResult:
    """What :func:`label_video` found.

    ``timeline``: DataFrame track_id, start, end, label, score (seconds). ``windows``: one row
    per classified window (track_id, start, end, label, score) and ``probs`` (N, K) its
    calibrated class probabilities over ``class_names``.
    """

    video: str
    duration: float
    frames: int
    timeline: pd.DataFrame
    windows: pd.DataFrame
    probs: np.ndarray
    class_names: list[str]
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # seconds per stage (decode wait, estimate, ...)


class _Classifier:
    """Collects windows and classifies them in batches across people and windows."""

    def __init__(self, model: ActionModel, img_shape: tuple[int, int], frame_dt: float,
                 batch: int = 32):
        from posrec.data.pipeline import build_transform

        self.model, self.img_shape, self.frame_dt, self.batch = model, img_shape, frame_dt, batch
        self.transform = build_transform(model.spec, train=False, num_clips=1)
        self.pending: list[tuple[int, float, float, torch.Tensor]] = []
        self.rows: list[tuple[int, float, float]] = []
        self.probs: list[np.ndarray] = []
        self.by_track: dict[int, list[tuple[float, str, float]]] = {}  # (centre, label, score)
        self.seconds = 0.0  # spent building inputs and running the model

    def add(self, store: TrackStore, windows: list[tuple[int, float, float]]) -> None:
        t0 = time.perf_counter()
        for tid, start, end in windows:
            anno = window_annotation(store, tid, start, end, self.model.spec, self.img_shape,
                                     self.frame_dt)
            if anno is not None:
                self.pending.append((tid, start, end, self.transform(anno)["keypoint"]))
        self.seconds += time.perf_counter() - t0
        if len(self.pending) >= self.batch:
            self.run()

    def run(self) -> None:
        """Classify every pending window."""
        if not self.pending:
            return
        t0 = time.perf_counter()
        x = torch.cat([p[3] for p in self.pending])  # (N, M, T, V, C)
        probs = self.model.probabilities(x)
        self.seconds += time.perf_counter() - t0
        for (tid, start, end, _), p in zip(self.pending, probs):
            k = int(p.argmax())
            label = self.model.class_names[k] if p[k] >= self.model.threshold else NO_ACTION
            self.rows.append((tid, start, end))
            self.probs.append(p)
            bisect.insort(self.by_track.setdefault(tid, []), ((start + end) / 2, label, float(p[k])))
        self.pending = []

    def current(self, tid: int, t: float) -> tuple[str, float] | None:
        """The label and score of the classified window of ``tid`` centred nearest ``t``."""
        marks = self.by_track.get(tid)
        if not marks:
            return None
        i = bisect.bisect_left(marks, (t,))
        near = min(marks[max(0, i - 1):i + 1], key=lambda m: abs(m[0] - t))
        return near[1], near[2]

    def windows(self) -> tuple[pd.DataFrame, np.ndarray]:
        probs = np.asarray(self.probs, np.float32).reshape(-1, len(self.model.class_names))
        df = pd.DataFrame(self.rows, columns=["track_id", "start", "end"])
        top = probs.argmax(1) if len(probs) else np.zeros(0, int)
        score = probs[np.arange(len(probs)), top] if len(probs) else np.zeros(0)
        df["label"] = [self.model.class_names[k] if s >= self.model.threshold else NO_ACTION
                       for k, s in zip(top, score)]
        df["score"] = score
        df = df.sort_values(["track_id", "start"], kind="stable")  # windows arrive interleaved
        return df.reset_index(drop=True), probs[df.index.to_numpy()]  # probs in the same order


def _estimated(frames: Iterator[tuple[float, np.ndarray]], estimator, tracker, every: int,
               batch: int, timings: dict) -> Iterator[tuple[float, np.ndarray, FramePoses | None]]:
    """``(t, rgb, poses)`` per frame; poses on every ``every``-th frame (None in between),
    estimated ``batch`` frames per estimator call, then tracked. Adds the seconds spent waiting
    for decoded frames, estimating and tracking to ``timings``."""
    if hasattr(estimator, "reset"):
        estimator.reset()  # a new video: forget the previous one's crop
    if getattr(estimator, "follow_person", False):
        batch = 1
    pending: list[tuple[float, np.ndarray, bool]] = []

    def flush():
        todo = [f for _, f, est in pending if est]
        t0 = time.perf_counter()
        found = estimator(todo) if todo else []
        t1 = time.perf_counter()
        tracked = iter([tracker.update(p) for p in found])
        timings["estimate"] += t1 - t0
        timings["track"] += time.perf_counter() - t1
        for t, f, est in pending:
            yield t, f, next(tracked) if est else None

    frames = iter(frames)
    for i in itertools.count():
        t0 = time.perf_counter()
        item = next(frames, None)
        timings["decode"] += time.perf_counter() - t0
        if item is None:
            break
        pending.append((item[0], item[1], i % every == 0))
        if sum(e for *_, e in pending) >= batch:
            yield from flush()
            pending = []
    yield from flush()


def check_settings(window: float | None, stride: float | None, threshold: float | None) -> None:
    """PosrecError for a window or stride (s) that is not positive, or a threshold outside
    [0, 1]; checked before any video is read (in a folder: once, not as a failure per video)."""
    for name, value in (("window", window), ("stride", stride)):
        if value is not None and not value > 0:
            raise PosrecError(f"--{name} must be a positive number of seconds, got {value:g}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise PosrecError(f"--threshold must be a probability between 0 and 1, got {threshold:g}")


NOMINAL_RATE = 1.01  # within 1 %: 30000/1001 (29.97) fps counts as the 30 it stands for, 59.94 as 60


def _every(min_fps: float | None, video_fps: float, every: int | str) -> int:
    """Estimate on every n-th frame: 'auto' keeps at least ``min_fps`` poses a second (of the
    video's nominal rate: a 29.97 fps clip is estimated like a 30 fps one)."""
    if every == "auto":
        return max(1, int(video_fps * NOMINAL_RATE // min_fps)) if min_fps and video_fps else 1
    if int(every) < 1:
        raise PosrecError(f"--every must be at least 1, got {every}")
    return int(every)


def _skeleton_dataset(store: TrackStore, stem: str, source: str, img_shape, fps: float) -> dict:
    kp, sc, ids = store.dense()
    h, w = img_shape
    anno = {"frame_dir": stem, "img_shape": (int(h), int(w)), "original_shape": (int(h), int(w)),
            "total_frames": len(store.times), "keypoint": kp, "keypoint_score": sc,
            "fps": float(fps), "layout": "coco17", "track_ids": ids, "source": source,
            "timestamps": np.asarray(store.times, np.float32)}
    return {"split": {"all": [stem]}, "annotations": [anno]}


def label_video(video: str | os.PathLike, model: str | ActionModel = DEFAULT_MODEL,
                estimator="multipose", out_dir: str | os.PathLike | None = None,
                window: float | None = None, stride: float | None = None,
                threshold: float | None = None, every: int | str = "auto", batch: int = 8,
                write_video: bool = True, overlay_size: str | None = DEFAULT_OVERLAY_SIZE, show: bool = False,
                progress: bool = True, rolling: bool = False) -> LabelResult:
    """Label every person of ``video`` (a file path, or an int camera index) with actions.

    ``model``: a shipped name, a checkpoint path or a loaded :class:`ActionModel`.
    ``estimator``: a name for :func:`posrec.estimate.estimators.load_estimator` or an estimator.
    ``window`` / ``stride`` (seconds) and ``threshold`` (calibrated probability under which a
    window is "no action") default to the model card's. ``every``: estimate on every n-th
    frame ('auto': as sparse as the model card's ``min_pose_fps`` allows, else its frame
    rate). ``rolling``: draw each person's latest label without waiting (the camera's mode).
    ``overlay_size``: the overlay video's short side is capped at it (default "720p", a
    preview; "full" or None keeps the video's size). ``out_dir``: write the run directory
    (see the module docstring); None writes nothing. Returns a :class:`LabelResult`.
    """
    from posrec.io.video import open_camera, open_video
    from posrec.progress import progress_bar

    check_settings(window, stride, threshold)
    am = model if isinstance(model, ActionModel) else load_action_model(model)
    if threshold is not None:  # a copy: the caller's model keeps its card's threshold
        am = dataclasses.replace(am, threshold=float(threshold))
    length = float(window if window is not None else am.window_seconds)  # 0 is not "default"
    step = float(stride if stride is not None else am.stride_seconds)
    if length <= 0 or step <= 0:
        raise PosrecError(f"window and stride must be positive seconds, got {length}, {step}")
    est = as_estimator(estimator)
    camera = isinstance(video, int)
    reader = open_camera(video) if camera else open_video(video)
    stem = f"camera{video}" if camera else Path(video).stem
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with reader:
        fps = reader.fps or 30.0
        n_every = _every(am.min_pose_fps or am.spec.fps, fps, every)
        img_shape = (reader.height, reader.width)
        clf = _Classifier(am, img_shape, frame_dt=1.5 * n_every / fps)
        store, cutter = TrackStore(), WindowCutter(length, step)
        files, overlay, ctx = [], None, OverlayContext(out, stem, fps, reader, overlay_size,
                                                        write_video, show)
        with ctx as (writer, size, display), \
                progress_bar(reader.frame_count, stem, enabled=progress) as bar:
            if writer is not None or display is not None:
                overlay = LabelOverlay(writer, size, reader.width, 0.0 if rolling else length / 2 + step,
                                   step, clf, display)
            timings = dict.fromkeys(("decode", "estimate", "track"), 0.0)
            t_start = time.perf_counter()
            count, t_last = _stream(reader, est, n_every, batch, fps, store, cutter, clf,
                                    overlay, bar, camera, timings)
            clf.add(store, cutter.flush(store))
            clf.run()
            t_close = time.perf_counter()
            if overlay is not None:
                overlay.close()
            if writer is not None:
                files.append(writer.path)
    timings["recognise"] = clf.seconds
    timings["draw"] = overlay.seconds if overlay is not None else 0.0
    timings["finish_video"] = time.perf_counter() - t_close  # last frames drawn, encoder drained
    timings["total_stream"] = t_close - t_start
    duration = max(t_last + 1 / fps, reader.duration or 0) if count else 0.0
    wdf, probs = clf.windows()
    from posrec.timeline import build_timeline

    timeline = build_timeline(wdf, probs, am.class_names, am.threshold, no_action=NO_ACTION)
    result = LabelResult(str(video), duration, count, timeline, wdf, probs, am.class_names, out,
                         files, timings)
    if out is not None:
        t0 = time.perf_counter()
        _write_outputs(result, store, am, stem, img_shape, fps,
                       dict(window=length, stride=step, every=n_every))
        timings["write_outputs"] = time.perf_counter() - t0
    return result


def _stream(reader, est, n_every, batch, fps, store, cutter, clf, overlay, bar, camera, timings):
    from posrec.estimate.stream import closing_stream, prefetch
    from posrec.estimate.tracker import PoseTracker

    frames = reader.timed() if camera else prefetch(reader.timed(), 4)
    count, t = 0, 0.0
    with closing_stream(frames, camera):
        for t, frame, poses in _estimated(frames, est, PoseTracker(fps=fps / n_every), n_every,
                                          batch, timings):
            if poses is not None:
                seen = store.add(t, poses)
                clf.add(store, cutter.update(store, seen, t))
            if overlay is not None:
                overlay.push(t, frame, poses, t)
                if overlay.quit:
                    break
            count += 1
            bar.update(1)
    return count, t


def as_estimator(estimator):
    """An estimator, or one loaded by its name (single-pose models follow their person)."""
    if not isinstance(estimator, str):
        return estimator
    from posrec.estimate.estimators import load_estimator

    return load_estimator(estimator, follow_person=estimator in ("lightning", "thunder"))


def _write_outputs(res: LabelResult, store: TrackStore, am: ActionModel, stem: str, img_shape,
                   fps: float, settings: dict) -> None:
    from posrec.io.atomic import atomic_write
    from posrec.io.pickle import save_dataset
    from posrec.timeline import plot_timeline, summary_row, write_timeline

    out = res.out_dir
    res.files += list(write_timeline(res.timeline, out))
    wdf = res.windows.copy()
    for k, name in enumerate(res.class_names):
        wdf[f"p_{name}"] = res.probs[:, k] if len(res.probs) else []
    with atomic_write(out / "windows.csv", "w") as f:
        wdf.round(4).to_csv(f, index=False)
    save_dataset(_skeleton_dataset(store, stem, res.video, img_shape, fps), out / "skeletons.pkl")
    res.files += [out / "windows.csv", out / "skeletons.pkl",
                  plot_timeline(res.timeline, out / "timeline.png", res.duration, title=stem)]
    info = {"video": res.video, "duration": round(res.duration, 3), "frames": res.frames,
            "model": am.name, "threshold": am.threshold, **settings,
            "summary": {k: (None if isinstance(v, float) and np.isnan(v) else v)
                        for k, v in summary_row(res.video, res.duration, res.timeline).items()},
            "files": sorted(p.name for p in res.files)}
    with atomic_write(out / "label.json", "w") as f:
        json.dump(info, f, indent=2, default=float)
    res.files.append(out / "label.json")


def default_out_dir(video: str | os.PathLike | int) -> Path:
    """``label_out/<video stem>/`` (``label_out/camera<N>/`` for a camera)."""
    return Path("label_out") / (f"camera{video}" if isinstance(video, int) else Path(video).stem)
