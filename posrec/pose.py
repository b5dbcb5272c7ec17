"""`posrec pose`: keypoints on images, video files and webcams, with overlays and JSON.

Outputs (in ``out_dir``, never over an input):
  image ``x.jpg`` -> ``x_pose.png`` (overlay) and ``x_pose.json`` (COCO-style people list);
  video ``x.mp4`` -> ``x_pose.mp4`` (overlay) and ``x_pose.json`` (one entry per frame).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from posrec.errors import PosrecError
from posrec.estimate.tracker import PoseTracker
from posrec.estimate.types import FramePoses
from posrec.io.atomic import atomic_write, check_not_input
from posrec.io.images import IMAGE_EXTS, read_image, write_image
from posrec.io.video import VIDEO_EXTS, open_camera, open_video, write_video
from posrec.overlay import COCO17_NAMES, draw_poses


def people_json(poses: FramePoses, decimals: int = 2) -> list[dict]:
    """COCO keypoint-result style entries: flat [x, y, score] * 17, bbox [x, y, w, h]."""
    out = []
    for i in range(len(poses)):
        kp = np.concatenate([poses.keypoints[i], poses.scores[i][:, None]], 1)
        x1, y1, x2, y2 = poses.boxes[i].tolist()
        out.append({
            "track_id": int(poses.track_ids[i]),
            "category_id": 1,
            "keypoints": np.round(kp, decimals).ravel().tolist(),
            "score": round(float(poses.box_scores[i]), 4),
            "bbox": [round(v, decimals) for v in (x1, y1, x2 - x1, y2 - y1)],
        })
    return out


def pose_image(path: Path, out_dir: Path, estimator, show: bool = False) -> tuple[Path, Path]:
    """Estimate poses on one image; write the overlay PNG and keypoints JSON."""
    image = read_image(path)
    poses = estimator([image])[0]
    stem = out_dir / f"{path.stem}_pose"
    png, js = stem.with_suffix(".png"), stem.with_suffix(".json")
    check_not_input(png, path)
    check_not_input(js, path)
    overlay = draw_poses(image.copy(), poses)
    write_image(png, overlay)
    if show:
        display = _Display(str(path))
        display.show(overlay, wait=True)
        display.close()
    doc = {"image": str(path), "height": image.shape[0], "width": image.shape[1],
           "keypoint_names": list(COCO17_NAMES), "people": people_json(poses)}
    with atomic_write(js, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return png, js


def prefetch(items: Iterable, depth: int = 4) -> Iterator:
    """Iterate ``items`` in a background thread, ``depth`` ahead: video decoding (and MP4
    encoding) run in OpenCV's C code without the GIL, so they overlap the model."""
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


@dataclass
class _Failure:
    error: BaseException


class BackgroundWriter:
    """Calls ``write(item)`` in a worker thread; ``close()`` waits and re-raises its errors."""

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


def batched_poses(reader: Iterable[np.ndarray], estimator, batch: int,
                  tracker: PoseTracker | None = None) -> Iterator[tuple[np.ndarray, FramePoses]]:
    """(frame, poses) for every frame of ``reader``, estimated ``batch`` frames at a time."""
    frames: list[np.ndarray] = []
    for frame in reader:
        frames.append(frame)
        if len(frames) == batch:
            yield from _flush(frames, estimator, tracker)
            frames = []
    yield from _flush(frames, estimator, tracker)


def _flush(frames, estimator, tracker):
    for frame, poses in zip(frames, estimator(frames)):
        yield frame, tracker.update(poses) if tracker is not None else poses


class _Display:
    """cv2.imshow where a screen exists; says once, clearly, when there is none."""

    def __init__(self, title: str):
        self.title, self.ok = title, True
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            self._off("no display found (DISPLAY is not set)")

    def _off(self, why: str) -> None:
        self.ok = False
        print(f"posrec: --show: {why}; not showing, outputs are still written", file=sys.stderr)

    def show(self, rgb: np.ndarray, wait: bool = False) -> bool:
        """Show a frame; False when the user pressed 'q'. ``wait``: until any key."""
        if not self.ok:
            return True
        import cv2

        try:
            cv2.imshow(self.title, rgb[..., ::-1])
            return (cv2.waitKey(0 if wait else 1) & 0xFF) != ord("q")
        except cv2.error:
            self._off("this OpenCV build cannot open windows (opencv-python-headless?)")
            return True

    def close(self) -> None:
        if self.ok:
            import cv2

            cv2.destroyAllWindows()


@dataclass
class VideoResult:
    frames: int
    overlay: Path | None
    json: Path


def pose_video(source: Path | int, out_dir: Path, estimator, batch: int = 8, show: bool = False,
               write_overlay: bool = True, progress: bool = True) -> VideoResult:
    """Estimate and track poses on a video file or a camera index; write overlay MP4 and JSON.

    Frames stream through (never the whole video in memory). A camera runs until 'q' (with
    ``show``) or Ctrl-C; what was captured until then is kept.
    """
    camera = isinstance(source, int)
    reader = open_camera(source) if camera else open_video(source)
    stem = out_dir / (f"camera{source}_pose" if camera else f"{Path(source).stem}_pose")
    mp4, js = stem.with_suffix(".mp4"), stem.with_suffix(".json")
    if not camera:
        check_not_input(mp4, source)
        check_not_input(js, source)
    fps = reader.fps if reader.fps > 0 else 30.0
    if hasattr(estimator, "reset"):
        estimator.reset()
    if getattr(estimator, "follow_person", False):
        batch = 1  # each crop depends on the previous frame's result
    tracker = PoseTracker(fps=fps)
    display = _Display(str(source)) if show else None
    bar = tqdm(total=reader.frame_count or None, unit="frame", desc=stem.name,
               disable=not progress, dynamic_ncols=True)
    count = 0
    with reader, atomic_write(js, "w", encoding="utf-8") as fj, \
            (write_video(mp4, fps, (reader.width, reader.height)) if write_overlay else _null()) as vw:
        header = {"video": str(source), "fps": fps, "width": reader.width, "height": reader.height,
                  "keypoint_names": list(COCO17_NAMES)}
        fj.write(json.dumps(header)[:-1] + ', "frames": [\n')
        writer = BackgroundWriter(vw.write) if vw is not None else None
        frames = reader if camera else prefetch(reader)  # a camera is read live, not ahead
        try:
            for frame, poses in batched_poses(frames, estimator, batch, tracker):
                entry = {"frame_index": count, "people": people_json(poses)}
                fj.write(("" if count == 0 else ",\n") + json.dumps(entry))
                if writer is not None or display is not None:
                    drawn = draw_poses(frame, poses)  # in place: the frame is not used again
                    if writer is not None:
                        writer.put(drawn)
                    if display is not None and not display.show(drawn):
                        break
                count += 1
                bar.update(1)
        except KeyboardInterrupt:
            if not camera:
                raise
        finally:
            bar.close()
            if frames is not reader:
                frames.close()  # stops the decoding thread before the reader closes
            if writer is not None:
                writer.close()
            if display is not None:
                display.close()
        fj.write("\n]}\n")
    return VideoResult(count, mp4 if write_overlay else None, js)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def run_pose(paths: list[Path], out_dir: Path, estimator_factory: Callable, camera: int | None = None,
             show: bool = False, batch: int = 8) -> list[Path]:
    """The `posrec pose` command over images, videos and folders of either."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if camera is not None:
        res = pose_video(camera, out_dir, estimator_factory(video=True), batch=1, show=show)
        return [p for p in (res.overlay, res.json) if p]
    files = _expand(paths)
    image_est = video_est = None
    for f in files:
        if f.suffix.lower() in IMAGE_EXTS:
            image_est = image_est or estimator_factory(video=False)
            written += pose_image(f, out_dir, image_est, show=show)
        else:
            video_est = video_est or estimator_factory(video=True)
            res = pose_video(f, out_dir, video_est, batch=batch, show=show)
            written += [p for p in (res.overlay, res.json) if p]
    return written


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if not p.exists():
            raise PosrecError(f"not found: {p}")
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                           and f.suffix.lower() in IMAGE_EXTS + VIDEO_EXTS)
            if not found:
                raise PosrecError(f"no images or videos in {p}")
            files += found
        else:
            files.append(p)
    return files
