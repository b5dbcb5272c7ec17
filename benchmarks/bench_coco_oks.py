"""Keypoint accuracy on the COCO val2017 sample in ../shared/data/keypoints/coco (12 people).

    python benchmarks/bench_coco_oks.py

Each ground-truth person is matched to one detection (Hungarian on OKS); the table gives the
mean OKS over the 12 people (unmatched people count 0) and how many reach OKS 0.5 / 0.75.
Single-pose models find one person per image by design, so their mean is bounded by that;
the reference in the same run is MultiPose (its default input size "auto", and fixed 256 px).
``multipose-follow`` looks at each image twice: MultiPose finds the people, then Lightning
re-estimates each on a crop around MultiPose's pose (what it does between MultiPose's looks in a
video); the second look is scored, following every person ("all") or at most its default three
(more, and MultiPose answers again). Four images are a sanity check, not a COCO AP.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posrec.estimate.estimators import load_estimator  # noqa: E402
from posrec.estimate.metrics import evaluate_coco  # noqa: E402
from posrec.paths import shared_data_dir  # noqa: E402


class SecondLook:
    """The following estimator's answer on an image it has already seen once."""

    def __init__(self, estimator):
        self.estimator = estimator

    def __call__(self, frames):
        self.estimator.reset()
        self.estimator(frames)
        return self.estimator(frames)


def _estimator(name: str):
    if name == "multipose-256":
        return load_estimator("multipose", input_size=256)
    if name.startswith("multipose-follow"):
        return SecondLook(load_estimator("multipose-follow", **({"max_followed": 12} if "all" in name else {})))
    return load_estimator(name)


def main() -> None:
    ann = shared_data_dir() / "keypoints" / "coco" / "test_coco.json"
    print(f"{'model':22} {'people':>6} {'mean OKS':>8} {'OKS>=.5':>7} {'OKS>=.75':>8}  per person")
    for name in ("lightning", "thunder", "multipose", "multipose-256", "multipose-follow",
                 "multipose-follow (all)"):
        r = [p.oks for p in evaluate_coco(_estimator(name), ann)]
        print(f"{name:22} {len(r):6d} {np.mean(r):8.3f} {sum(o >= .5 for o in r):7d} "
              f"{sum(o >= .75 for o in r):8d}  {' '.join(f'{o:.2f}' for o in r)}")


if __name__ == "__main__":
    main()
