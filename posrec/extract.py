"""`posrec extract`: videos -> a PYSKL/MMAction2 skeleton dataset file (DESIGN.md schema).

Each clip becomes one annotation with its people as tracks, keypoint (M, T, 17, 2) in pixels,
keypoint_score (M, T, 17), ``img_shape``, ``fps``, ``timestamps`` (float32 (T,), seconds from
the video's pts) and ``layout: coco17``. Finished clips are kept in ``OUT.parts/`` as they
complete, keyed on the clip's path, size and modification time, the estimator and its settings
and the options, so an interrupted run resumes where it stopped and a changed clip or estimator
is redone; the dataset file is written (atomically) at the end. Clips that cannot be decoded
are skipped and listed in the dataset's ``failed`` list ("path: reason"); the command then
exits 1 after writing the good ones. ``--shard I/N`` takes every N-th clip, for N processes or
job-array tasks; ``posrec data merge`` joins their files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from posrec.errors import PosrecError
from posrec.estimate.stream import check_positive, track_video
from posrec.estimate.tracker import PoseTracker, tracks_to_arrays
from posrec.io.atomic import check_not_input
from posrec.io.pickle import load_pickle, save_dataset, save_pickle
from posrec.io.video import iter_video_files, open_video
from posrec.progress import progress_bar

CACHE_VERSION = 2  # bump when an annotation's content changes: older parts are then redone


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
    poses, times = [], []
    with open_video(path) as reader:
        fps = reader.fps if reader.fps > 0 else 30.0
        with progress_bar(reader.frame_count, path.name, enabled=progress, leave=False) as bar:
            for t, _, frame_poses in track_video(reader, estimator, PoseTracker(fps=fps), batch):
                poses.append(frame_poses)
                times.append(t)
                bar.update(1)
        h, w = reader.height, reader.width
    keypoint, score, track_ids = tracks_to_arrays(poses, len(poses))
    if max_people is not None:
        keypoint, score, track_ids = keypoint[:max_people], score[:max_people], track_ids[:max_people]
    return {"frame_dir": path.stem, "img_shape": (h, w), "original_shape": (h, w),
            "total_frames": len(poses), "keypoint": keypoint.astype(np.float32),
            "keypoint_score": score.astype(np.float32), "fps": float(fps), "layout": "coco17",
            "timestamps": np.asarray(times, np.float32),
            "track_ids": np.asarray(track_ids, np.int64), "source": str(path)}


def estimator_settings(estimator) -> dict:
    """What identifies an estimator's output: its class and its plain settings (variant, input
    size, thresholds, device...), and those of the estimators it is made of (multipose-follow's
    finder and follower), for the resume cache."""
    settings = {"class": type(estimator).__name__}
    for k, v in sorted(vars(estimator).items()):
        if k.startswith("_"):
            continue
        if isinstance(v, (str, int, float, bool, type(None))):
            settings[k] = v
        elif callable(v) and hasattr(v, "variant"):  # an estimator inside this one
            settings[k] = estimator_settings(v)
    return settings


def cache_key(video: Path, estimator, max_people: int | None) -> str:
    """The resume cache's key: the clip (absolute path, size, mtime), estimator and options."""
    st = video.stat()
    spec = {"path": os.path.abspath(video), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "estimator": estimator_settings(estimator), "max_people": max_people,
            "version": CACHE_VERSION}
    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:20]


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
    """Build (or resume) a dataset file from videos; returns the dataset dict.

    Clips that cannot be decoded are warned about, skipped and listed in ``dataset["failed"]``
    as "path: reason"; PosrecError when no clip at all could be extracted.
    """
    check_positive("--batch", batch)
    check_positive("--max-people", max_people)
    rank, world = parse_shard(shard)
    out = Path(str(out).format(i=rank, n=world, rank=rank))
    videos = iter_video_files(inputs, recursive=labels_from_dirs)
    for v in videos:
        check_not_input(out, v)
    roots = [p for p in inputs if p.is_dir()]
    classes = sorted({_class_of(v, roots) for v in videos}) if labels_from_dirs else []
    mine = videos[rank::world]
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    annotations, failed = [], []
    desc = f"extract {rank}/{world}" if world > 1 else "extract"
    with progress_bar(len(mine), desc, unit="clip", enabled=progress) as bar:
        for video in mine:
            bar.update(1)
            part = parts / f"{cache_key(video, estimator, max_people)}.pkl"
            if part.exists():
                ann = load_pickle(part)
            else:
                try:
                    ann = clip_annotation(video, estimator, batch, max_people, progress)
                except PosrecError as err:  # one broken clip must not sink a long job
                    failed.append(f"{video}: {err}")
                    warnings.warn(f"skipped {video}: {err}")
                    continue
                save_pickle(ann, part)
            if labels_from_dirs:  # after the cache: the class list may have changed since
                ann["label"] = classes.index(_class_of(video, roots))
            annotations.append(ann)
    if not annotations:
        raise PosrecError("no clip could be extracted" + (f": {failed[0]}" if failed else ""))
    names = [a["frame_dir"] for a in annotations]
    if len(set(names)) != len(names):  # same file name in two class folders
        for a in annotations:
            a["frame_dir"] = str(Path(a["source"]).with_suffix("")).lstrip("/")
    dataset = {"split": {"all": [a["frame_dir"] for a in annotations]}, "annotations": annotations,
               "failed": failed}
    if classes:
        dataset["classes"] = classes
    save_dataset(dataset, out)
    shutil.rmtree(parts, ignore_errors=True)
    return dataset
