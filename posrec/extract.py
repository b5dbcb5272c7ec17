"""`posrec extract`: videos -> a PYSKL/MMAction2 skeleton dataset file (DESIGN.md schema).

Each clip becomes one annotation with its people as tracks, keypoint (M, T, 17, 2) in pixels,
keypoint_score (M, T, 17), ``img_shape``, ``fps`` and ``layout: coco17``. Finished clips are
kept in ``OUT.parts/`` as they complete, so an interrupted run resumes where it stopped; the
dataset file is written (atomically) at the end. ``--shard I/N`` takes every N-th clip, for N
processes or job-array tasks; ``posrec data merge`` joins their files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posrec.errors import PosrecError
from posrec.estimate.tracker import PoseTracker, tracks_to_arrays
from posrec.io.atomic import check_not_input
from posrec.io.pickle import load_pickle, save_dataset, save_pickle
from posrec.io.video import iter_video_files, open_video
from posrec.pose import batched_poses


def parse_shard(spec: str | None) -> tuple[int, int]:
    """'I/N' -> (I, N); 'auto' reads torchrun's RANK/WORLD_SIZE or a Slurm job array."""
    if spec is None:
        return 0, 1
    if spec == "auto":
        for rank, size in (("RANK", "WORLD_SIZE"), ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")):
            if rank in os.environ and size in os.environ:
                return int(os.environ[rank]), int(os.environ[size])
        return 0, 1
    try:
        i, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise PosrecError(f"--shard must look like I/N (e.g. 0/4) or 'auto', got {spec!r}") from None
    if not 0 <= i < n:
        raise PosrecError(f"--shard {spec}: need 0 <= I < N")
    return i, n


def clip_annotation(path: Path, estimator, batch: int = 8, max_people: int | None = None,
                    progress: bool = True) -> dict:
    """Estimate and track every person in one video -> one PYSKL annotation dict."""
    if hasattr(estimator, "reset"):
        estimator.reset()
    if getattr(estimator, "follow_person", False):
        batch = 1
    with open_video(path) as reader:
        fps = reader.fps if reader.fps > 0 else 30.0
        tracker = PoseTracker(fps=fps)
        frames = []
        bar = tqdm(total=reader.frame_count or None, unit="frame", desc=path.name,
                   disable=not progress, leave=False, dynamic_ncols=True)
        for _, poses in batched_poses(reader, estimator, batch, tracker):
            frames.append(poses)
            bar.update(1)
        bar.close()
        h, w = reader.height, reader.width
    keypoint, score, track_ids = tracks_to_arrays(frames, len(frames))
    if max_people is not None:
        keypoint, score, track_ids = keypoint[:max_people], score[:max_people], track_ids[:max_people]
    return {"frame_dir": path.stem, "img_shape": (h, w), "original_shape": (h, w),
            "total_frames": len(frames), "keypoint": keypoint.astype(np.float32),
            "keypoint_score": score.astype(np.float32), "fps": float(fps), "layout": "coco17",
            "track_ids": np.asarray(track_ids, np.int64), "source": str(path)}


def _class_of(video: Path, roots: list[Path]) -> str:
    for root in roots:
        try:  # abspath, not resolve: class folders may hold symlinks to the real files
            rel = Path(os.path.abspath(video)).relative_to(os.path.abspath(root))
        except ValueError:
            continue
        if len(rel.parts) >= 2:
            return rel.parts[0]
    raise PosrecError(f"--labels-from-dirs: {video} is not inside a class folder of "
                      f"{', '.join(map(str, roots))}")


def extract(inputs: list[Path], out: Path, estimator, labels_from_dirs: bool = False,
            shard: str | None = None, batch: int = 8, max_people: int | None = None,
            progress: bool = True) -> dict:
    """Build (or resume) a dataset file from videos; returns the dataset dict."""
    rank, world = parse_shard(shard)
    out = Path(str(out).format(i=rank, n=world, rank=rank))
    videos = iter_video_files(inputs, recursive=labels_from_dirs)
    for v in videos:
        check_not_input(out, v)
    classes: list[str] = []
    if labels_from_dirs:
        roots = [p for p in inputs if p.is_dir()]
        classes = sorted({_class_of(v, roots) for v in videos})
    mine = videos[rank::world]
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    annotations, failed = [], []
    bar = tqdm(mine, unit="clip", desc=f"extract {rank}/{world}" if world > 1 else "extract",
               disable=not progress, dynamic_ncols=True)
    for video in bar:
        key = hashlib.sha1(os.path.abspath(video).encode()).hexdigest()[:16]
        part = parts / f"{key}.pkl"
        if part.exists():
            ann = load_pickle(part)
        else:
            try:
                ann = clip_annotation(video, estimator, batch, max_people, progress)
            except PosrecError as err:  # one broken clip must not sink a long job
                failed.append(f"{video}: {err}")
                warnings.warn(f"skipped {video}: {err}")
                continue
            if labels_from_dirs:
                ann["label"] = classes.index(_class_of(video, [p for p in inputs if p.is_dir()]))
            save_pickle(ann, part)
        annotations.append(ann)
    if not annotations:
        raise PosrecError("no clip could be extracted" + (f": {failed[0]}" if failed else ""))
    names = [a["frame_dir"] for a in annotations]
    if len(set(names)) != len(names):  # same file name in two class folders
        for a in annotations:
            a["frame_dir"] = str(Path(a["source"]).with_suffix("")).lstrip("/")
    dataset = {"split": {"all": [a["frame_dir"] for a in annotations]}, "annotations": annotations}
    if classes:
        dataset["classes"] = classes
    save_dataset(dataset, out)
    shutil.rmtree(parts, ignore_errors=True)
    return dataset
