"""Speed and memory of `posrec label`, against the straightforward pipeline in the same run.

    python benchmarks/bench_label.py [--threads 2] [--minutes 1 5 10] [--skip-memory]

Clips (made in a temporary folder from the real clips of ../shared/data/videos):
* ``640x480 1 person``: clean_and_jerk.mp4 (340x256, 30 fps, 10 s) scaled to 640x480;
* ``640x480 3 people``: basketball_two_people.mp4 (2 people) beside tai_chi.mp4 (1 person),
  each scaled to 320x480, 30 fps, 10 s (a composite of real footage: no shared clip shows three
  people at 640x480);
* ``1080p 3 people``: the same composite scaled to 1920x1080.

The reference is what a user would write from posrec's pieces: ``posrec extract``'s
``clip_annotation`` (decode, estimate and track the whole video into memory), then the
classifier over uniform windows, one window at a time, estimating every frame. posrec label
streams, batches windows across people and writes the overlay video, timeline and skeleton file
as well. Both use the same estimator (MultiPose, its default input size, on its default backend)
and model; the real-time factor is processing seconds per second of video (< 1: faster than
real time). ``posrec label``'s default ``--every auto`` estimates every third frame of these
30 fps clips (the model card's ``min_pose_fps`` 10; its accuracy cost is measured by
tools/ship_action_model.py, "noisy_every3"); two more rows label the one-person clip estimating
every frame, on ONNX Runtime and on PyTorch, and the last three use ``--estimator
multipose-follow`` (MultiPose finds people, Lightning follows each on a crop). A second table
times the whole command as a user runs it, in a fresh process (Python's and torch's imports,
the ONNX Runtime sessions, all outputs), against ``label_video`` in a warm process, best of 2,
alternating. Peak memory:
``posrec label`` in a subprocess on the 640x480 one-person clip looped to each length (VmHWM).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posrec.paths import shared_data_dir  # noqa: E402

VIDEOS = shared_data_dir() / "videos"


def _frames(name: str, size: tuple[int, int], seconds: float = 10.0) -> list[np.ndarray]:
    from posrec.io.video import open_video

    out = []
    with open_video(VIDEOS / name) as r:
        for t, rgb in r.timed():
            if t >= seconds:
                break
            out.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
    return out


def make_clips(tmp: Path) -> dict[str, Path]:
    from posrec.io.video_write import write_video

    one = _frames("clean_and_jerk.mp4", (640, 480))
    left, right = _frames("basketball_two_people.mp4", (320, 480)), _frames("tai_chi.mp4", (320, 480))
    n = min(len(left), len(right))
    three = [np.concatenate([a, b], 1) for a, b in zip(left[:n], right[:n])]
    clips = {"640x480 1 person": (one, (640, 480)), "640x480 3 people": (three, (640, 480)),
             "1080p 3 people": ([cv2.resize(f, (1920, 1080)) for f in three], (1920, 1080))}
    paths = {}
    for name, (frames, size) in clips.items():
        path = tmp / (name.replace(" ", "_") + ".mp4")
        with write_video(path, 30.0, size, preset="veryfast") as vw:
            for i, f in enumerate(frames):
                vw.write(f, i / 30.0)
        paths[name] = path
    return paths


def reference(path: Path, model, estimator) -> float:
    """Seconds for extract-then-classify over uniform windows, one window per model call."""
    from posrec.data.pipeline import build_transform
    from posrec.extract import clip_annotation
    from posrec.windows import TrackStore, WindowCutter, window_annotation
    from posrec.estimate.types import FramePoses

    t0 = time.perf_counter()
    anno = clip_annotation(path, estimator, batch=8, progress=False)
    store = TrackStore()  # the annotation's arrays, as one track per row
    times = anno["timestamps"]
    for i, t in enumerate(times):
        present = (anno["keypoint_score"][:, i] > 0).any(-1)
        store.add(float(t), FramePoses(anno["keypoint"][present, i], anno["keypoint_score"][present, i],
                                       np.zeros((present.sum(), 4)), np.ones(present.sum()),
                                       anno["track_ids"][present]))
    transform = build_transform(model.spec, train=False)
    cutter = WindowCutter(model.window_seconds, model.stride_seconds)
    windows = cutter.update(store, list(store.tracks), float(times[-1])) + cutter.flush(store)
    for tid, start, end in windows:
        a = window_annotation(store, tid, start, end, model.spec, anno["img_shape"], 1.5 / 30)
        if a is not None:
            model.probabilities(transform(a)["keypoint"])
    return time.perf_counter() - t0


def speed_table(clips: dict[str, Path]) -> None:
    from posrec.action_model import load_action_model
    from posrec.estimate.estimators import load_estimator
    from posrec.label import label_video
    from posrec.skeleton import get_layout

    model, est = load_action_model(), load_estimator("multipose")
    follow = load_estimator("multipose-follow")
    torch_model, torch_est = load_action_model(backend="torch"), load_estimator("multipose", backend="torch")
    for m, e in ((model, est), (torch_model, torch_est), (model, follow)):  # sessions made (and graphs cached) first
        e([np.zeros((480, 640, 3), np.uint8)])
        joints = get_layout(m.spec.layout).num_joints
        m.probabilities(torch.zeros(1, m.spec.num_person, m.spec.clip_len, joints, m.card["in_channels"]))
    with tempfile.TemporaryDirectory() as out:  # one-time imports (the plot's matplotlib) paid here
        label_video(clips["640x480 1 person"], model, est, out_dir=out, progress=False)
    print("| clip | settings | video s | posrec label s | RTF | reference s | RTF | label / reference | "
          "decode wait | estimate | track | recognise | draw | outputs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    # The default settings on every clip, then the one-person clip estimating every frame, on
    # ONNX Runtime and on PyTorch (estimator and action model: the defaults before). The
    # reference estimates every frame with the default estimator and action model (ONNX Runtime).
    one = clips["640x480 1 person"]
    rows = [(name, path, "default", model, est, "auto") for name, path in clips.items()]
    rows.append(("640x480 1 person", one, "--every 1", model, est, 1))
    rows.append(("640x480 1 person", one, "--every 1 --backend torch", torch_model, torch_est, 1))
    rows += [(name, path, "--estimator multipose-follow", model, follow, "auto")
             for name, path in clips.items()]
    refs: dict[Path, float] = {}
    for name, path, settings, recogniser, estimator, every in rows:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            res = label_video(path, recogniser, estimator, out_dir=out, progress=False, every=every)
            ours = time.perf_counter() - t0
        if path not in refs:
            refs[path] = reference(path, model, est)
        ref = refs[path]
        tm = res.timings
        split = " | ".join(f"{tm.get(k, 0):.1f}" for k in ("decode", "estimate", "track",
                                                          "recognise", "draw", "write_outputs"))
        print(f"| {name} | {settings} | {res.duration:.1f} | {ours:.1f} | {ours / res.duration:.2f} | "
              f"{ref:.1f} | {ref / res.duration:.2f} | {ours / ref:.2f} | {split} |", flush=True)


def command_table(clips: dict[str, Path], threads: int, repeats: int = 2) -> None:
    """The whole ``posrec label`` command as a user runs it, in a fresh process (imports, ONNX
    Runtime sessions, outputs), against ``label_video`` in a warm process, alternating."""
    from posrec.label import label_video

    cli = Path(sys.executable).with_name("posrec")
    print("| clip | command wall s | RTF | in-process s | RTF | fixed cost s |")
    print("|---|---|---|---|---|---|")
    for name, path in clips.items():
        cmd, warm = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                subprocess.run([str(cli), "label", str(path), "-o", out, "--threads", str(threads)],
                               check=True, capture_output=True)
                cmd.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                res = label_video(path, out_dir=out, progress=False)
                warm.append(time.perf_counter() - t0)
        c, w = min(cmd), min(warm)
        print(f"| {name} | {c:.1f} | {c / res.duration:.2f} | {w:.1f} | {w / res.duration:.2f} | "
              f"{c - w:.1f} |", flush=True)


def memory_table(clip: Path, minutes: list[float], tmp: Path, threads: int) -> None:
    from posrec.io.video import open_video
    from posrec.io.video_write import write_video

    with open_video(clip) as r:
        frames = [f for _, f in r.timed()]
    print("| video length | peak memory (MB) | wall s |")
    print("|---|---|---|")
    for m in minutes:
        long = tmp / f"loop_{m:g}min.mp4"
        n = int(m * 60 * 30)
        with write_video(long, 30.0, (640, 480), preset="ultrafast") as vw:
            for i in range(n):
                vw.write(frames[i % len(frames)], i / 30.0)
        # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's peak (Linux keeps it
        # across fork and exec), VmHWM belongs to the child's own address space.
        code = (f"import re, torch; torch.set_num_threads({threads}); "
                f"from posrec.label import label_video; "
                f"label_video({str(long)!r}, out_dir={str(tmp / 'out')!r}, progress=False); "
                f"print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())"
                f".group(1)) / 1024)")
        t0 = time.perf_counter()
        peak = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.split()[-1]
        print(f"| {m:g} min | {float(peak):.0f} | {time.perf_counter() - t0:.0f} |", flush=True)
        long.unlink()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp))
        if not a.skip_speed:
            speed_table(clips)
            command_table(clips, a.threads)
        if not a.skip_memory:
            memory_table(clips["640x480 1 person"], a.minutes, Path(tmp), a.threads)
    print(f"this process's peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
