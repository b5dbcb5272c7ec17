"""`posrec pose`: keypoints on images, video files and webcams, with overlays and JSON.

Outputs (in ``out_dir``, never over an input; files found inside a folder argument keep their
sub-folder under ``out_dir``):
  image ``x.jpg`` -> ``x_pose.png`` (overlay) and ``x_pose.json`` (COCO-style people list);
  video ``x.mp4`` -> ``x_pose.mp4`` (H.264 overlay) and ``x_pose.json`` (one entry per frame,
  with ``t``, its time in seconds from the video's timestamps).
Two inputs that would get the same output name (``a/shot.jpg`` and ``b/shot.png``, or
``shot.jpg`` and ``shot.mp4``) get names that tell them apart: ``shot_jpg_pose``, then the parent
folder, then a number.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from posrec.errors import PosrecError
from posrec.estimate.stream import (BackgroundWriter, batched_poses, check_positive,  # noqa: F401
                                    closing_stream, prefetch, track_video)
from posrec.estimate.tracker import PoseTracker
from posrec.estimate.types import FramePoses
from posrec.io.atomic import atomic_write, check_not_input
from posrec.io.images import IMAGE_EXTS, read_image, write_image
from posrec.io.video import VIDEO_EXTS, open_camera, open_video, write_video
from posrec.overlay import COCO17_NAMES, draw_poses, fit_overlay
from posrec.progress import progress_bar

# batched_poses and prefetch are re-exported: they lived here before posrec.estimate.stream.


def _rounded(values: np.ndarray, decimals: int) -> list:
    # Through float64: rounding a float32 leaves it float32 (308.3 -> 308.29998779296875 in JSON).
    return np.round(np.asarray(values, np.float64), decimals).tolist()


def people_json(poses: FramePoses, decimals: int = 2) -> list[dict]:
    """COCO keypoint-result style entries: flat [x, y, score] * 17, bbox [x, y, w, h] (pixels)."""
    out = []
    for i in range(len(poses)):
        kp = np.concatenate([poses.keypoints[i], poses.scores[i][:, None]], 1)
        x1, y1, x2, y2 = np.asarray(poses.boxes[i], np.float64)
        out.append({
            "track_id": int(poses.track_ids[i]),
            "category_id": 1,
            "keypoints": _rounded(kp.ravel(), decimals),
            "score": round(float(poses.box_scores[i]), 4),
            "bbox": _rounded([x1, y1, x2 - x1, y2 - y1], decimals),
        })
    return out


def pose_image(path: Path, out_dir: Path, estimator, show: bool = False,
               stem: str | None = None) -> tuple[Path, Path]:
    """Estimate poses on one image; write ``<stem>.png`` (overlay) and ``<stem>.json``."""
    image = read_image(path)
    poses = estimator([image])[0]
    base = out_dir / (stem or f"{path.stem}_pose")
    png, js = base.with_name(base.name + ".png"), base.with_name(base.name + ".json")
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
        try:
            cv2.imshow(self.title, rgb[..., ::-1])
            return (cv2.waitKey(0 if wait else 1) & 0xFF) != ord("q")
        except cv2.error:
            self._off("this OpenCV build cannot open windows (opencv-python-headless?)")
            return True

    def close(self) -> None:
        if self.ok:
            cv2.destroyAllWindows()


def overlay_size(spec: str | None, width: int, height: int) -> tuple[int, int]:
    """(width, height) of the overlay video: ``spec`` "720p" (or "720") caps the short side at
    720 pixels keeping the aspect ratio (portrait too); None or "full" keeps the frame size.
    Never scales up. Even sizes, as H.264's 4:2:0 needs."""
    if spec in (None, "", "full"):
        return width, height
    m = re.fullmatch(r"(\d+)p?", str(spec).strip().lower())
    if not m or int(m.group(1)) < 16:
        raise PosrecError(f"--overlay-size must look like 720p (the short side in pixels) or 'full', got {spec!r}")
    s = min(1.0, int(m.group(1)) / min(width, height))
    return max(2, round(width * s / 2) * 2), max(2, round(height * s / 2) * 2)


@dataclass
class VideoResult:
    frames: int
    overlay: Path | None
    json: Path


class _Overlay:
    """Resizes, draws and encodes overlay frames; runs in the BackgroundWriter's thread."""

    def __init__(self, writer, size: tuple[int, int], frame_width: int):
        self.writer, self.size, self.scale = writer, size, size[0] / frame_width

    def prepare(self, frame: np.ndarray, poses: FramePoses) -> np.ndarray:
        # drawn in place: the frame is not used again
        return draw_poses(fit_overlay(frame, self.size), poses, scale=self.scale)

    def __call__(self, item: tuple[float, np.ndarray, FramePoses | None]) -> None:
        t, frame, poses = item  # poses None: drawn already (for --show)
        self.writer.write(frame if poses is None else self.prepare(frame, poses), t)


def pose_video(source: Path | int, out_dir: Path, estimator, batch: int = 8, show: bool = False,
               write_overlay: bool = True, progress: bool = True, stem: str | None = None,
               size: str | None = None) -> VideoResult:
    """Estimate and track poses on a video file or a camera index; write overlay MP4 and JSON.

    Frames stream through (never the whole video in memory): decoding runs ahead in one thread,
    drawing and encoding behind in another; the overlay keeps the video's frame times.
    ``size``: the overlay's size (see overlay_size).
    ``stem``: output name without extension (default ``<video stem>_pose``). A camera runs
    until 'q' (with ``show``) or Ctrl-C; what was captured until then is kept.
    """
    camera = isinstance(source, int)
    reader = open_camera(source) if camera else open_video(source)
    base = out_dir / (stem or (f"camera{source}_pose" if camera else f"{Path(source).stem}_pose"))
    mp4, js = base.with_name(base.name + ".mp4"), base.with_name(base.name + ".json")
    if not camera:
        check_not_input(mp4, source)
        check_not_input(js, source)
    fps = reader.fps if reader.fps > 0 else 30.0
    out_size = overlay_size(size, reader.width, reader.height)
    display = _Display(str(source)) if show else None
    count = 0
    with reader, atomic_write(js, "w", encoding="utf-8") as fj, \
            (write_video(mp4, fps, out_size) if write_overlay else _null()) as vw, \
            progress_bar(reader.frame_count, base.name, enabled=progress) as bar:
        header = {"video": str(source), "fps": fps, "width": reader.width, "height": reader.height,
                  "rotation": reader.rotation, "keypoint_names": list(COCO17_NAMES)}
        fj.write(json.dumps(header)[:-1] + ', "frames": [\n')
        overlay = _Overlay(vw, out_size, reader.width) if vw is not None else None
        writer = BackgroundWriter(overlay) if overlay is not None else None
        frames = track_video(reader, estimator, PoseTracker(fps=fps), batch)
        try:
            with closing_stream(frames, camera):
                for t, frame, poses in frames:
                    entry = {"frame_index": count, "t": round(t, 6), "people": people_json(poses)}
                    fj.write(("" if count == 0 else ",\n") + json.dumps(entry))
                    if display is not None:
                        drawn = overlay.prepare(frame, poses) if overlay else draw_poses(frame, poses)
                        if writer is not None:
                            writer.put((t, drawn, None))
                        if not display.show(drawn):
                            break
                    elif writer is not None:
                        writer.put((t, frame, poses))  # drawn in the writer's thread
                    count += 1
                    bar.update(1)
        finally:
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
             show: bool = False, batch: int = 8, size: str | None = None,
             write_video_overlay: bool = True) -> list[Path]:
    """The `posrec pose` command over images, videos and folder trees of either.

    ``estimator_factory(video=bool)`` makes the estimator for images or videos; ``size`` and
    ``write_video_overlay`` shape the overlay videos (see pose_video). Returns the files written.
    """
    check_positive("--batch", batch)
    if out_dir.exists() and not out_dir.is_dir():
        raise PosrecError(f"-o {out_dir}: that is a file; give a folder for the outputs")
    if camera is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        res = pose_video(camera, out_dir, estimator_factory(video=True), batch=1, show=show,
                         size=size, write_overlay=write_video_overlay)
        return [p for p in (res.overlay, res.json) if p]
    files = _expand(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_est = video_est = None
    written: list[Path] = []
    for (f, _), stem in zip(files, output_stems(files)):
        (out_dir / stem).parent.mkdir(parents=True, exist_ok=True)
        if f.suffix.lower() in IMAGE_EXTS:
            image_est = image_est or estimator_factory(video=False)
            written += pose_image(f, out_dir, image_est, show=show, stem=stem)
        else:
            video_est = video_est or estimator_factory(video=True)
            res = pose_video(f, out_dir, video_est, batch=batch, show=show, stem=stem, size=size,
                             write_overlay=write_video_overlay)
            written += [p for p in (res.overlay, res.json) if p]
    return written


def _expand(paths: list[Path]) -> list[tuple[Path, Path | None]]:
    """(file, folder argument it was found in, or None for a file named directly)."""
    files: list[tuple[Path, Path | None]] = []
    for p in paths:
        if not p.exists():
            raise PosrecError(f"not found: {p}")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS + VIDEO_EXTS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise PosrecError(f"no images or videos in {p} (or its sub-folders)")
            files += [(f, p) for f in found]
        else:
            files.append((p, None))
    return files


def output_stems(files: list[tuple[Path, Path | None]]) -> list[str]:
    """The output name (without extension, relative to the output folder) of each input.

    ``x_pose``, under the file's sub-folder when it was found inside a folder argument. Inputs
    that would share a name get the input's extension in it (``x_jpg_pose``), then its parent
    folder's name, then a running number, so that no output overwrites another.
    """
    def name(f: Path, root: Path | None, level: int) -> str:
        sub = f.parent.relative_to(root) if root is not None else Path()
        tag = [f.parent.name] if level >= 2 and f.parent.name else []
        ext = [f.suffix.lstrip(".").lower()] if level >= 1 and f.suffix else []
        return str(sub / "_".join(tag + [f.stem] + ext + ["pose"]))

    stems = [name(f, r, 0) for f, r in files]
    for level in (1, 2):
        counts = Counter(stems)
        stems = [name(f, r, level) if counts[s] > 1 else s for (f, r), s in zip(files, stems)]
    seen: Counter = Counter()
    unique = []
    for s in stems:
        seen[s] += 1
        unique.append(s if seen[s] == 1 else f"{s}_{seen[s]}")
    return unique
