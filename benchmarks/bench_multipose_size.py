"""MultiPose input size: people found against time per frame, fixed sizes and "auto".

    python benchmarks/bench_multipose_size.py [--threads 1]

Table 1, the hard case: ``videos/vtest_pedestrians.avi`` (768x576 CCTV, small pedestrians), the
two 2-second stretches of tests/test_tracking_real.py (every other frame): pedestrians found on
the six frames counted by eye (a person counts as found when a box holds the point noted on
them), people per frame, ms per frame (estimation only, batches of 8, probes included).
Table 2, ordinary clips where people are large: the first 120 frames of each, fixed 256 (the
old default, the reference in the same run) against "auto"; each run twice, interleaved, the
faster kept. Table 3: the other shared clips, the size "auto" chooses. Table 4: mean OKS on
the COCO sample (12 people, posrec.estimate.metrics). Table 5: on every 25th vtest frame, the
share of people found by their height in model-input pixels (what "auto" is built on).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from posrec.paths import shared_data_dir  # noqa: E402

STRATEGIES = (256, 384, 512, 640, "auto")
ORDINARY = ("basketball_two_people.mp4", "clean_and_jerk.mp4", "tai_chi.mp4")
OTHERS = ("sports2d_demo.mp4", "ntu_A055_hugging.avi", "pose2sim_single_cam01.mp4")


def _estimator(size):
    from posrec.estimate.estimators import MoveNetEstimator

    return MoveNetEstimator("multipose", input_size=size)


def _frames(clip: str, keep) -> dict[int, np.ndarray]:
    from posrec.io.video import open_video

    with open_video(shared_data_dir() / "videos" / clip) as reader:
        return {i: f for i, f in enumerate(reader) if keep(i)}


def _run(estimator, frames: list[np.ndarray], batch: int = 8) -> tuple[list, float]:
    """Poses per frame and seconds per frame for one video (estimator reset first)."""
    estimator.reset()
    t0, out = time.perf_counter(), []
    for k in range(0, len(frames), batch):
        out += estimator(frames[k:k + batch])
    return out, (time.perf_counter() - t0) / max(len(frames), 1)


def _chosen(estimator) -> str:
    return f"{estimator.sizer.size}" if estimator.auto else "-"


def pedestrians() -> None:
    from test_tracking_real import PEDESTRIANS_BY_EYE, SEGMENTS, _found

    from posrec.estimate.tracker import PoseTracker

    wanted = {i for seg in SEGMENTS for i in seg}
    frames = _frames("vtest_pedestrians.avi", wanted.__contains__)
    eye = sum(len(v) for v in PEDESTRIANS_BY_EYE.values())
    print(f"vtest_pedestrians.avi, {len(wanted)} frames, {eye} pedestrians counted by eye on 6 frames")
    print(f"{'input size':>10} {'found':>7} {'people/frame':>12} {'ms/frame':>9} {'chosen':>8}")
    for size in STRATEGIES:
        est, found, people, seconds, chosen = _estimator(size), 0, [], 0.0, []
        for segment in SEGMENTS:
            poses, s = _run(est, [frames[i] for i in segment])
            seconds += s * len(segment)
            chosen.append(_chosen(est))
            tracker = PoseTracker(fps=5)
            tracked = dict(zip(segment, (tracker.update(p) for p in poses)))
            people += [len(p) for p in poses]
            found += sum(sum(t >= 0 for t in _found(tracked[i], pts))
                         for i, pts in PEDESTRIANS_BY_EYE.items() if i in segment)
        print(f"{size:>10} {found:>3}/{eye:<3} {np.mean(people):12.2f} "
              f"{1000 * seconds / len(wanted):9.0f} {'/'.join(chosen):>8}")


def against_256(clips, n: int, repeats: int) -> None:
    """Fixed 256 (the reference) against auto on the first ``n`` frames of each clip; each run
    ``repeats`` times, interleaved, the faster kept."""
    print(f"\nfirst {n} frames, fixed 256 (reference) against auto, best of {repeats}")
    print(f"{'clip':28} {'frame':>10} {'256 ms':>7} {'auto ms':>7} {'ratio':>6} "
          f"{'people 256/auto':>16} {'chosen':>7}")
    fixed, auto = _estimator(256), _estimator("auto")
    for clip in clips:
        frames = list(_frames(clip, lambda i: i < n).values())
        best = {}
        for _ in range(repeats):
            for name, est in (("256", fixed), ("auto", auto)):
                poses, s = _run(est, frames)
                if s < best.get(name, (None, np.inf))[1]:
                    best[name] = (poses, s)
        (p256, s256), (pauto, sauto) = best["256"], best["auto"]
        h, w = frames[0].shape[:2]
        print(f"{clip:28} {f'{w}x{h}':>10} {1000 * s256:7.1f} {1000 * sauto:7.1f} {sauto / s256:6.2f} "
              f"{np.mean([len(p) for p in p256]):7.2f}/{np.mean([len(p) for p in pauto]):<8.2f} "
              f"{_chosen(auto):>7}")


def coco() -> None:
    from posrec.estimate.metrics import evaluate_coco

    ann = shared_data_dir() / "keypoints" / "coco" / "test_coco.json"
    print("\nCOCO val2017 sample (12 people): mean OKS, people with OKS >= 0.5")
    print(f"{'input size':>10} {'mean OKS':>8} {'OKS>=.5':>7}")
    for size in STRATEGIES:
        r = [p.oks for p in evaluate_coco(_estimator(size), ann)]
        print(f"{size:>10} {np.mean(r):8.3f} {sum(o >= .5 for o in r):7d}")


def heights(step: int = 25, sizes=(256, 384, 512, 640, 768)) -> None:
    """Recall by a person's height in model-input pixels, on every ``step``-th vtest frame:
    the people found at any size are pooled (IoU >= 0.3 is one person)."""
    from posrec.estimate.tracker import box_iou

    frames = list(_frames("vtest_pedestrians.avi", lambda i: i % step == step // 2).values())
    found = {}
    for size in sizes:
        est = _estimator(size)
        est.max_people = 12
        found[size] = _run(est, frames, batch=4)[0]
    bins = (0, 30, 40, 50, 60, 80, 10000)
    print(f"\nvtest every {step}th frame ({len(frames)} frames): recall by person height in "
          f"input px (people pooled over sizes)")
    print(f"{'input size':>10} {'recall':>6}  " + " ".join(f"{f'{a}-{b}':>11}" for a, b in zip(bins, bins[1:])))
    for size in sizes:
        height, hit = [], []
        for k in range(len(frames)):
            pooled = np.zeros((0, 4), np.float32)
            for s in sizes:
                for box in found[s][k].boxes:
                    if not len(pooled) or box_iou(pooled, box[None]).max() < 0.3:
                        pooled = np.vstack([pooled, box[None]])
            iou = box_iou(pooled, found[size][k].boxes)
            height += list((pooled[:, 3] - pooled[:, 1]) * size / max(frames[k].shape[:2]))
            hit += list(iou.max(1) >= 0.3) if iou.shape[1] else [False] * len(pooled)
        height, hit = np.array(height), np.array(hit)
        cells = []
        for a, b in zip(bins, bins[1:]):
            m = (height >= a) & (height < b)
            cells.append(f"{hit[m].mean():.2f} ({m.sum():3d})" if m.any() else "-")
        print(f"{size:>10} {hit.mean():6.2f}  " + " ".join(f"{c:>11}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only-heights", action="store_true", help="only table 5")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}")
    if not args.only_heights:
        pedestrians()
        against_256(ORDINARY, 120, 2)
        against_256(OTHERS, 32, 1)
        coco()
    heights()


if __name__ == "__main__":
    main()
