"""MoveNet's input sampling (posrec.estimate.preprocess) against the straightforward numpy
formula of the same TF.js arithmetic, in the same run.

    python benchmarks/bench_preprocess.py [--reps 50]

Frames are real: the first frame of ``sports2d_demo.mp4`` (1768x994) scaled to 640x480 and
1920x1080. The reference computes ``tl + (tr - tl) * dx`` etc. with a fresh float64 array per
operation and the colour as a broadcast innermost axis, as posrec did before 2026-12-01 (fifth
session); posrec's version runs the same operations in place, row-contiguous. Both outputs are
checked equal (the model inputs are pinned bit for bit by tests/test_movenet_reference.py).
Timings alternate between the two, median of ``--reps`` calls each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posrec.estimate import preprocess  # noqa: E402
from posrec.paths import shared_data_dir  # noqa: E402


def straightforward_sample(frame, ys, xs, y_valid, x_valid):
    """The same arithmetic as preprocess._sample, one new array per operation."""
    pixels, (y0, y1, x0, x1), (dy, dx) = preprocess.bilinear_taps(frame, ys, xs)

    def at(rows, cols):
        return np.take(pixels, rows + cols).view(np.uint8).reshape(len(ys), len(xs), 3).astype(np.float64)

    tl, tr, bl, br = at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)
    dx, dy = dx[None, :, None], dy[:, None, None]
    top, bottom = tl + (tr - tl) * dx, bl + (br - bl) * dx
    out = top + (bottom - top) * dy
    out *= (y_valid[:, None] & x_valid[None, :])[..., None]
    return out.astype(np.float32).astype(np.uint8)


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()
    from posrec.io.video import open_video

    with open_video(shared_data_dir() / "videos" / "sports2d_demo.mp4") as video:
        first = next(iter(video.timed()))[1]
    calls = {
        "resize_pad_to_32 (MultiPose, 256)": lambda f: preprocess.resize_pad_to_32(f, 256),
        "resize_with_pad (Lightning, 192)": lambda f: preprocess.resize_with_pad(f, 192, 192),
        "crop_and_resize (a followed person, 192)":
            lambda f: preprocess.crop_and_resize(f, np.array([0.1, 0.3, 0.7, 0.64]), 192),
    }
    print("| frame | call | posrec ms | straightforward ms | speed-up |")
    print("|---|---|---|---|---|")
    ours = preprocess._sample
    for size in ((640, 480), (1920, 1080)):
        frame = cv2.resize(first, size, interpolation=cv2.INTER_AREA)
        for name, call in calls.items():
            try:
                preprocess._sample = straightforward_sample
                ref_out = call(frame)[0]
                ref = [_median_ms(lambda: call(frame), 1)]
                preprocess._sample = ours
                assert np.array_equal(call(frame)[0], ref_out)
                mine = []
                for _ in range(args.reps):  # alternate, so that both see the same machine
                    mine.append(_median_ms(lambda: call(frame), 1))
                    preprocess._sample = straightforward_sample
                    ref.append(_median_ms(lambda: call(frame), 1))
                    preprocess._sample = ours
            finally:
                preprocess._sample = ours
            a, b = float(np.median(mine)), float(np.median(ref))
            print(f"| {size[0]}x{size[1]} | {name} | {a:.2f} | {b:.2f} | {b / a:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
