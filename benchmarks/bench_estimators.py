"""Estimator speed and memory on frames of a real clip, and full `posrec pose` throughput.

    python benchmarks/bench_estimators.py [--quick] [--variants multipose]

Table 1: model forward time per frame (median over repeats) and the process's peak resident
memory, for each MoveNet at batch 1 and 8 with 1 and 2 threads, on model inputs prepared from
frames of ``videos/sports2d_demo.mp4``. Each configuration runs in a fresh process so the
peak memory is its own. The reference in the same run: the same network run "straight",
as a plain PyTorch port would (contiguous NCHW float input, ``torch.no_grad``). A third column
runs the network on ONNX Runtime (posrec's default on the CPU), the decoding in PyTorch.

Table 2: the whole `posrec pose` pipeline (decode, estimate, track, draw, encode MP4, JSON) on a
10-second 1920x1080 clip made from the sports2d frames, against the model alone on the same
frames: the difference is what decoding, drawing and writing add.

Table 3 (``--weights-check``, alone): the cost of verifying the shipped weights' sha256 at load.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posrec.paths import shared_data_dir  # noqa: E402

CLIP = "videos/sports2d_demo.mp4"
VARIANTS = ("lightning", "thunder", "multipose")


def _frames(n: int) -> list[np.ndarray]:
    from posrec.io.video import open_video

    with open_video(shared_data_dir() / CLIP) as reader:
        return [f for _, f in zip(range(n), reader)]


def measure(variant: str, batch: int, threads: int, mode: int, repeats: int) -> dict:
    """One configuration, in this process: ms per frame (median) and peak RSS.

    ``mode``: 0 posrec on PyTorch, 1 the straight PyTorch port, 2 posrec on ONNX Runtime."""
    import torch

    from posrec.estimate.estimators import MoveNetEstimator

    torch.set_num_threads(threads)
    est = MoveNetEstimator(variant, backend="onnxruntime" if mode == 2 else "torch",
                           **({"input_size": 256} if variant == "multipose" else {}))
    frames = _frames(max(batch, 8))
    if variant == "multipose":  # 640x480 frames, the target size
        import cv2

        frames = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA) for f in frames]
    inputs = np.stack([est._prepare(f)[0] for f in frames[:batch]])
    x = torch.from_numpy(inputs)
    if mode == 2:
        def run():
            est.raw(inputs)
    elif mode == 1:
        xs = x.permute(0, 3, 1, 2).contiguous().float()  # NCHW float, as a plain port feeds it

        def run():
            with torch.no_grad():
                est.model(xs.permute(0, 2, 3, 1))  # the model permutes back: NCHW contiguous
    else:
        def run():
            with torch.inference_mode():
                est.model(x)
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) / batch)
    return {"ms_per_frame": 1000 * float(np.median(times)), "input": list(inputs.shape[1:3]),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def pipeline(variant: str, threads: int, clip: Path, out: Path) -> dict:
    """Full `posrec pose` on ``clip`` vs the model alone on the same frames (same process)."""
    import torch

    from posrec.estimate.estimators import load_estimator
    from posrec.io.video import open_video
    from posrec.pose import pose_video

    torch.set_num_threads(threads)
    est = load_estimator(variant, follow_person=True)
    with open_video(clip) as reader:
        frames = list(reader)
    est.reset()
    batch = 8
    t = time.perf_counter()
    for i in range(0, len(frames), batch):  # estimation only: pre-processing + model + decode
        est(frames[i:i + batch])
    model_s = time.perf_counter() - t
    del frames
    t = time.perf_counter()
    res = pose_video(clip, out, est, batch=batch, progress=False)
    full_s = time.perf_counter() - t
    return {"frames": res.frames, "estimate_fps": res.frames / model_s, "pose_fps": res.frames / full_s,
            "overhead_pct": 100 * (full_s - model_s) / model_s}


def make_clip(path: Path, seconds: float = 10.0, fps: float = 30.0) -> None:
    import cv2

    from posrec.io.video import write_video

    frames = [cv2.resize(f, (1920, 1080)) for f in _frames(10_000)]
    seq = frames + frames[::-1]  # forwards then backwards: smooth motion, no jump
    with write_video(path, fps, (1920, 1080)) as vw:
        for i in range(int(seconds * fps)):
            vw.write(seq[i % len(seq)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration
    ap.add_argument("--weights-check", action="store_true", help="only table 3")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--no-pipeline", action="store_true", help="table 1 only")
    args = ap.parse_args()
    if args.weights_check:
        return weights_check()
    repeats = 10 if args.quick else 30
    if args.one:
        v, b, t, s = args.one.split(",")
        print(json.dumps(measure(v, int(b), int(t), int(s), repeats)))
        return

    rows = []
    for variant in args.variants:
        for batch in (1, 8):
            for threads in (1, 2):
                for straight in (0, 1, 2):
                    proc = subprocess.run([sys.executable, __file__, "--one",
                                           f"{variant},{batch},{threads},{straight}"]
                                          + (["--quick"] if args.quick else []),
                                          capture_output=True, text=True, check=True)
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    rows.append((variant, batch, threads, straight, r))
    print("\nTable 1: model forward, ms per frame (median) and peak memory")
    print(f"{'model':10} {'input':>8} {'batch':>5} {'thr':>3} {'posrec ms':>9} {'straight ms':>11} "
          f"{'speed-up':>8} {'peak MB':>7} {'onnxruntime ms':>14} {'vs posrec torch':>15}")
    for variant in args.variants:
        for batch in (1, 8):
            for threads in (1, 2):
                ours = next(r for v, b, t, s, r in rows if (v, b, t, s) == (variant, batch, threads, 0))
                ref = next(r for v, b, t, s, r in rows if (v, b, t, s) == (variant, batch, threads, 1))
                ort = next(r for v, b, t, s, r in rows if (v, b, t, s) == (variant, batch, threads, 2))
                size = "x".join(map(str, ours["input"]))
                print(f"{variant:10} {size:>8} {batch:5d} {threads:3d} {ours['ms_per_frame']:9.2f} "
                      f"{ref['ms_per_frame']:11.2f} {ref['ms_per_frame'] / ours['ms_per_frame']:7.2f}x "
                      f"{ours['peak_mb']:7.0f} {ort['ms_per_frame']:14.2f} "
                      f"{ours['ms_per_frame'] / ort['ms_per_frame']:14.2f}x")

    if args.no_pipeline:
        return
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip_1080p_10s.mp4"
        make_clip(clip)
        print("\nTable 2: `posrec pose` on a 10 s 1920x1080 30 fps clip, 2 threads")
        print(f"{'model':10} {'frames':>6} {'estimate fps':>12} {'pose fps':>8} {'overhead':>8}")
        for variant in args.variants:
            r = pipeline(variant, 2, clip, Path(tmp) / "out")
            print(f"{variant:10} {r['frames']:6d} {r['estimate_fps']:12.1f} {r['pose_fps']:8.1f} "
                  f"{r['overhead_pct']:7.0f}%")


def weights_check() -> None:
    """Table 3: what the sha256 check of the shipped weights adds to loading a MoveNet."""
    from posrec.estimate.movenet import _sha256, load_movenet
    from posrec.paths import WEIGHTS_DIR

    print("Table 3: sha256 of each weight file against load_movenet (first call hashes, "
          "the second finds the hash cached)")
    print(f"{'model':10} {'MB':>5} {'sha256 ms':>9} {'load ms':>8} {'load again ms':>13}")
    for variant in VARIANTS:
        path = WEIGHTS_DIR / f"movenet_{variant}.safetensors"
        st = path.stat()
        t = time.perf_counter()
        _sha256.__wrapped__(str(path.resolve()), st.st_size, st.st_mtime_ns)
        digest = time.perf_counter() - t
        _sha256.cache_clear()
        t = time.perf_counter()
        load_movenet(variant)
        first = time.perf_counter() - t
        t = time.perf_counter()
        load_movenet(variant)
        again = time.perf_counter() - t
        print(f"{variant:10} {st.st_size / 2**20:5.1f} {1000 * digest:9.1f} {1000 * first:8.0f} "
              f"{1000 * again:13.0f}")


if __name__ == "__main__":
    main()
