"""Video I/O speed: both decoders, x264 presets, and the whole `posrec pose` command at 1080p.

    python benchmarks/bench_video.py [--quick] [--tables 1,2,3,4,5]

Table 1: decode fps (RGB frames out, as the pipeline consumes them) of the PyAV reader and the
OpenCV reader on every clip in ../shared/data/videos, alternating in the same run (best of
``repeats``): the figures that chose ``posrec.io.video.DEFAULT_DECODER``.
Table 2: encode fps of a 1920x1080 H.264 overlay per x264 preset (and OpenCV's mp4v, the
fallback), with the file size: the figures that chose ``DEFAULT_PRESET``.
Table 3: where a 1080p frame's time goes, per stage, each measured alone (ms per frame).
Table 4: the whole `posrec pose` command (decode, estimate, track, draw, encode H.264, JSON)
on 1080p clips against two references measured in the same run: the estimator alone on frames
already in memory ("overhead"), and a plain decode-and-infer loop as a straightforward port
would write it (OpenCV decode, cv2 resize, NCHW float tensor, ``torch.no_grad``; "ratio" =
whole command time / plain loop time). "before" is posrec at commit BEFORE (OpenCV decode,
mp4v overlay drawn in the main thread), run from a `git archive` of that commit.
Table 5 (only when asked: ``--tables 5``): the whole command's parts on the same clips, each in
a fresh process: the estimator alone, posrec's reader alone (decode to RGB, nothing else), the
command with ``--no-video``, with ``--overlay-size 720p`` and with the full-size overlay.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Table 4 runs each measurement in a fresh process; "before" with the old tree's posrec first.
sys.path.insert(0, os.environ.get("POSREC_BENCH_TREE", str(ROOT)))

from posrec.paths import shared_data_dir  # noqa: E402

BEFORE = "86ed5c3"  # the last commit before PyAV reading/writing and the shared streaming loop
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "medium")
THREADS = int(os.environ.get("POSREC_BENCH_THREADS", "2"))  # --threads sets it for the workers


def _frames(path: Path, n: int, decoder: str = "pyav") -> list[np.ndarray]:
    from posrec.io.video import open_video

    with open_video(path, decoder) as reader:
        return [f for _, f in zip(range(n), reader)]


def decode_fps(path: Path, decoder: str) -> tuple[float, int]:
    from posrec.io.video import open_video

    t = time.perf_counter()
    with open_video(path, decoder) as reader:
        assert reader.backend == decoder
        n = sum(1 for _ in reader)
    return n / (time.perf_counter() - t), n


def table_decode(repeats: int) -> None:
    print("\nTable 1: decode fps (RGB frames), PyAV reader vs OpenCV reader, best of", repeats)
    print(f"{'clip':28} {'codec':8} {'size':>9} {'frames':>6} {'pyav fps':>9} {'opencv fps':>10} {'pyav/opencv':>11}")
    import av

    for clip in sorted((shared_data_dir() / "videos").iterdir()):
        best = {"pyav": 0.0, "opencv": 0.0}
        for _ in range(repeats):
            for dec in best:
                fps, n = decode_fps(clip, dec)
                best[dec] = max(best[dec], fps)
        with av.open(str(clip)) as c:
            s = c.streams.video[0]
            codec, size = s.codec_context.name, f"{s.width}x{s.height}"
        print(f"{clip.name:28} {codec:8} {size:>9} {n:6d} {best['pyav']:9.0f} {best['opencv']:10.0f} "
              f"{best['pyav'] / best['opencv']:10.2f}x")


def table_encode(frames: list[np.ndarray]) -> None:
    import posrec.io.video_write as vw_module
    from posrec.io.video import write_video

    print(f"\nTable 2: encoding {len(frames)} 1920x1080 frames (RGB in), fps and file size")
    print(f"{'codec':10} {'preset':10} {'fps':>6} {'KB':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("h264", p) for p in PRESETS] + [("mp4v", "-")]
        for codec, preset in rows:
            out = Path(tmp) / f"{codec}_{preset}.mp4"
            saved = vw_module.av
            if codec == "mp4v":  # the fallback, as on a machine without PyAV
                vw_module.av, vw_module._warned_fallback = None, True
            try:
                t = time.perf_counter()
                with write_video(out, 30, (1920, 1080), preset=preset if codec == "h264" else "ultrafast") as vw:
                    for f in frames:
                        vw.write(f)
                fps = len(frames) / (time.perf_counter() - t)
            finally:
                vw_module.av = saved
            print(f"{codec:10} {preset:10} {fps:6.1f} {out.stat().st_size / 1024:7.0f}")


def table_stages(frames: list[np.ndarray]) -> None:
    import torch

    from posrec.estimate.estimators import load_estimator
    from posrec.estimate.tracker import PoseTracker
    from posrec.overlay import draw_poses

    torch.set_num_threads(THREADS)
    print(f"\nTable 3: a 1920x1080 frame's stages, each alone, ms per frame ({THREADS} threads)")
    est = load_estimator("lightning", follow_person=True)
    est.reset()
    poses = [est([f])[0] for f in frames]
    est.reset()
    rows = []
    t = time.perf_counter()
    for f in frames:
        est([f])
    rows.append(("lightning estimate (crop, resize, model)", time.perf_counter() - t))
    tracker = PoseTracker(fps=30)
    t = time.perf_counter()
    for p in poses:
        tracker.update(p)
    rows.append(("tracking", time.perf_counter() - t))
    t = time.perf_counter()
    for f, p in zip(frames, poses):
        draw_poses(f.copy(), p)
    copy_s = _time(lambda: [f.copy() for f in frames])
    rows.append(("drawing", time.perf_counter() - t - copy_s))
    rows.append(("RGB -> BGR (OpenCV writer input)", _time(lambda: [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames])))
    rows.append(("RGB -> I420 (H.264 writer input)", _time(lambda: [cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in frames])))
    rows.append(("resize to 1280x720 (--overlay-size 720p)",
                 _time(lambda: [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_AREA) for f in frames])))
    for name, s in rows:
        print(f"{name:44} {1000 * s / len(frames):7.2f}")


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def plain_loop(clip: Path, variant: str) -> tuple[float, int]:
    """What a straightforward port does: OpenCV decode, BGR->RGB, letterbox resize to the model's
    square input, NCHW float tensor, forward under no_grad; nothing drawn or written."""
    import torch

    from posrec.estimate.movenet import load_movenet

    model = load_movenet(variant).eval()
    size = model.input_size
    cap = cv2.VideoCapture(str(clip))
    n, t = 0, time.perf_counter()
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        s = size / max(h, w)
        small = cv2.resize(rgb, (round(w * s), round(h * s)))
        pad = np.zeros((size, size, 3), np.uint8)
        pad[:small.shape[0], :small.shape[1]] = small
        x = torch.from_numpy(pad).permute(2, 0, 1)[None].float().contiguous()
        with torch.no_grad():
            model(x.permute(0, 2, 3, 1))
        n += 1
    cap.release()
    return time.perf_counter() - t, n


def estimate_alone(clip: Path, variant: str, batch: int = 8) -> tuple[float, int]:
    from posrec.estimate.estimators import load_estimator

    frames = _frames(clip, 100_000)
    est = load_estimator(variant, follow_person=True)
    est.reset()
    step = 1 if est.follow_person else batch
    t = time.perf_counter()
    for i in range(0, len(frames), step):
        est(frames[i:i + step])
    return time.perf_counter() - t, len(frames)


def whole_command(clip: Path, variant: str, out: Path) -> tuple[float, int]:
    """`posrec pose` as the CLI runs it (pose_video of this checkout or of the one on sys.path)."""
    from posrec.estimate.estimators import load_estimator
    from posrec.pose import pose_video

    est = load_estimator(variant, follow_person=True)
    t = time.perf_counter()
    res = pose_video(clip, out, est, batch=8, progress=False)
    return time.perf_counter() - t, res.frames


def decode_only(clip: Path, variant: str) -> tuple[float, int]:
    """posrec's reader alone: every frame decoded to RGB (with its pts), nothing else."""
    from posrec.io.video import open_video

    n, t = 0, time.perf_counter()
    with open_video(clip) as reader:
        for _ in reader:
            n += 1
    return time.perf_counter() - t, n


def command_variant(clip: Path, variant: str, out: Path, how: str) -> tuple[float, int]:
    """`posrec pose` with ``--no-video`` (how="none") or ``--overlay-size how``."""
    from posrec.estimate.estimators import load_estimator
    from posrec.pose import pose_video

    est = load_estimator(variant, follow_person=True)
    t = time.perf_counter()
    res = pose_video(clip, out, est, batch=8, progress=False, write_overlay=how != "none",
                     size=None if how == "none" else how)
    return time.perf_counter() - t, res.frames


def table_where(variants: list[str], repeats: int) -> None:
    """Where the whole command's time above the estimator alone goes: the same clip decoded
    only, the command without the overlay, with a 720p overlay, and with the full-size one."""
    print(f"\nTable 5: the whole command's parts, seconds ({THREADS} threads, best of {repeats})")
    print(f"{'clip':26} {'model':9} {'alone':>6} {'decode':>6} {'no video':>8} {'720p':>6} {'full':>6} "
          f"{'decode/alone':>12} {'no video over':>13} {'720p over':>9} {'full over':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip10 = tmp / "ntu_1080p_10s.mp4"
        make_1080p_clip(clip10)
        for clip in [clip10, shared_data_dir() / "videos" / "pose2sim_single_cam01.mp4"]:
            for variant in variants:
                keys = ("alone", "decode", "none", "720p", "full")
                best = dict.fromkeys(keys, float("inf"))
                for _ in range(repeats):
                    for k in keys:
                        what = {"alone": "estimate_alone", "decode": "decode_only"}.get(k, f"command_{k}")
                        best[k] = min(best[k], _measure_in_subprocess(what, clip, variant, tmp / k, ROOT))
                a = best["alone"]
                over = {k: f"{100 * (best[k] - a) / a:.0f}%" for k in ("none", "720p", "full")}
                print(f"{clip.name:26} {variant:9} {a:6.2f} {best['decode']:6.2f} {best['none']:8.2f} "
                      f"{best['720p']:6.2f} {best['full']:6.2f} {best['decode'] / a:12.2f} "
                      f"{over['none']:>13} {over['720p']:>9} {over['full']:>9}")


def _measure_in_subprocess(what: str, clip: Path, variant: str, out: Path, tree: Path) -> float:
    """Seconds for ``what`` in a fresh process importing posrec from ``tree``."""
    env = dict(os.environ, POSREC_BENCH_TREE=str(tree))
    proc = subprocess.run([sys.executable, __file__, "--one", f"{what},{clip},{variant},{out}"],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])[0]


def make_1080p_clip(path: Path, seconds: float = 10.0, fps: float = 30.0) -> None:
    """10 s of 1920x1080 H.264 from the real NTU hugging clip, forwards then backwards."""
    from posrec.io.video import write_video

    frames = _frames(shared_data_dir() / "videos" / "ntu_A055_hugging.avi", 10_000)
    seq = frames + frames[::-1]
    with write_video(path, fps, (1920, 1080), preset="veryfast") as vw:
        for i in range(int(seconds * fps)):
            vw.write(seq[i % len(seq)])


def table_pipeline(variants: list[str], repeats: int) -> None:
    print(f"\nTable 4: whole `posrec pose` vs the estimator alone and vs a plain decode-and-infer loop "
          f"({THREADS} threads, best of {repeats})")
    print(f"{'clip':26} {'model':9} {'frames':>6} {'alone s':>7} {'plain s':>7} {'before s':>8} "
          f"{'after s':>7} {'overhead before':>15} {'overhead after':>14} {'ratio before':>12} {'ratio after':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "before"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE, "posrec"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        clip10 = tmp / "ntu_1080p_10s.mp4"
        make_1080p_clip(clip10)
        clips = [clip10, shared_data_dir() / "videos" / "pose2sim_single_cam01.mp4"]
        for clip in clips:
            for variant in variants:
                best = {k: float("inf") for k in ("alone", "plain", "before", "after")}
                for _ in range(repeats):  # alternate, so that load on the machine hits all alike
                    best["alone"] = min(best["alone"], _measure_in_subprocess("estimate_alone", clip, variant, tmp, ROOT))
                    best["plain"] = min(best["plain"], _measure_in_subprocess("plain_loop", clip, variant, tmp, ROOT))
                    best["before"] = min(best["before"], _measure_in_subprocess("whole_command", clip, variant, tmp / "o1", old))
                    best["after"] = min(best["after"], _measure_in_subprocess("whole_command", clip, variant, tmp / "o2", ROOT))
                n = len(_frames(clip, 100_000))
                a = best["alone"]
                print(f"{clip.name:26} {variant:9} {n:6d} {a:7.2f} {best['plain']:7.2f} {best['before']:8.2f} "
                      f"{best['after']:7.2f} {100 * (best['before'] - a) / a:14.0f}% {100 * (best['after'] - a) / a:13.0f}% "
                      f"{best['before'] / best['plain']:12.2f} {best['after'] / best['plain']:11.2f}")


def main() -> None:
    global THREADS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repeat, Lightning only")
    ap.add_argument("--tables", default="1,2,3,4", help="which tables (5 only when named)")
    ap.add_argument("--models", default=None,
                    help="table 4's estimators, comma-separated (default lightning,multipose; "
                         "--quick: lightning)")
    ap.add_argument("--threads", type=int, default=THREADS,
                    help="PyTorch threads (default 2; 1 on a machine other jobs load: OpenMP's "
                         "barriers stall when its threads lose their cores)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement of table 4
    args = ap.parse_args()
    THREADS = args.threads
    os.environ["POSREC_BENCH_THREADS"] = str(THREADS)
    if args.one:
        import torch

        torch.set_num_threads(THREADS)
        what, clip, variant, out = args.one.split(",")
        if what.startswith("command_"):
            print(json.dumps(command_variant(Path(clip), variant, Path(out), what.removeprefix("command_"))))
            return
        fn = {"estimate_alone": estimate_alone, "plain_loop": plain_loop, "whole_command": whole_command,
              "decode_only": decode_only}[what]
        print(json.dumps(fn(Path(clip), variant, *([Path(out)] if what == "whole_command" else []))))
        return
    tables = set(args.tables.split(","))
    repeats = 1 if args.quick else 3
    import torch

    torch.set_num_threads(THREADS)
    print(f"posrec bench_video: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if "1" in tables:
        table_decode(repeats)
    hd = _frames(shared_data_dir() / "videos" / "ntu_A055_hugging.avi", 72)
    if "2" in tables:
        table_encode(hd)
    if "3" in tables:
        table_stages(hd)
    if "4" in tables:
        models = args.models or ("lightning" if args.quick else "lightning,multipose")
        table_pipeline(models.split(","), repeats)
    if "5" in tables:
        table_where((args.models or "lightning").split(","), repeats)


if __name__ == "__main__":
    main()
