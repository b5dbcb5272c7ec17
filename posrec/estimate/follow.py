"""MultiPose finds the people, Lightning follows each of them on a crop: MoveNet's video recipe
for several people at a fraction of MultiPose's cost.

MultiPose looks at the whole frame; Lightning looks at one 192x192 crop around one person,
1.7-2.4 times cheaper on ONNX Runtime (benchmarks/RESULTS.md, "MoveNet on ONNX Runtime") and
sharper on small people, whom the crop enlarges. :class:`FollowingMultiPose` runs MultiPose on
the first frame; from then on each person of the previous frame is re-estimated by Lightning on
a square crop around them (the reference tutorial's crop, per person), and MultiPose looks at
the whole frame again every ``look_every`` frames and on the frame after anyone was lost, only
to find newcomers: a person being followed keeps Lightning's pose, so their joints do not jump
between two models' habits. Where nobody is followed, or more people than ``max_followed`` are
(their crops would cost more than one MultiPose pass), MultiPose runs on every frame, batched.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from posrec.estimate.estimators import (MIN_CROP_KEYPOINT_SCORE, MoveNetEstimator, check_frames,
                                        _keypoint_boxes, body_square)
from posrec.estimate.preprocess import crop_and_resize
from posrec.estimate.tracker import keypoint_oks
from posrec.estimate.types import FramePoses


def person_crop(keypoints: np.ndarray, scores: np.ndarray, h: int, w: int) -> np.ndarray:
    """The square crop (y1, x1, y2, x2), normalised to the frame (it may reach outside it),
    around one person's keypoints (17, 2) pixels (x, y) with scores (17,).

    As the reference tutorial's ``determine_crop_region`` where the torso is seen (centred on
    the hips, 1.9 torso or 1.2 body half-extents); otherwise a square 1.25 times the confident
    keypoints' box. Never the whole frame, which would hold everyone else too."""
    square = body_square(keypoints[:, 0], keypoints[:, 1], scores)
    if square is not None:
        cx, cy, half = square
    else:
        seen = scores >= MIN_CROP_KEYPOINT_SCORE
        pts = keypoints[seen] if seen.sum() >= 2 else keypoints
        (x_min, y_min), (x_max, y_max) = pts.min(0), pts.max(0)
        cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2
        half = 0.625 * max(x_max - x_min, y_max - y_min)
    half = max(float(half), 16.0)  # a handful of pixels is no crop
    return np.array([(cy - half) / h, (cx - half) / w, (cy + half) / h, (cx + half) / w])


class FollowingMultiPose:
    """MultiPose to find people, Lightning on a crop to follow each (see the module docstring).

    Args:
        look_every: MultiPose looks at the whole frame every this many frames (new people are
            found within that many frames; at 10 poses a second, ``posrec label``'s rate for
            a 30 fps clip with the shipped model, 8 is 0.8 s).
        max_followed: follow at most this many people; with more, MultiPose runs on every frame.
        min_follow_score: a followed person whose mean keypoint score falls under this is lost
            (MultiPose looks again on the next frame).
        device, backend, **multipose: as :class:`MoveNetEstimator` (``multipose`` goes to the
            MultiPose finder: input size, people, weights).
    Call :meth:`reset` between videos. Outputs are the estimator contract's FramePoses; every
    box is the box of the person's confident keypoints, on MultiPose's frames as on Lightning's,
    so that the tracker compares like with like.
    """

    SAME_PERSON_OKS = 0.5  # two poses this similar are one person (boxes are not enough:
    # two players crossing, two people hugging overlap by most of their boxes)

    def __init__(self, look_every: int = 8, max_followed: int = 3, min_follow_score: float = 0.25,
                 device: str = "cpu", backend: str = "auto",
                 **multipose):
        if look_every < 1 or max_followed < 1:
            raise ValueError("look_every and max_followed must be at least 1")
        self.finder = MoveNetEstimator("multipose", device=device, backend=backend, **multipose)
        self.follower = MoveNetEstimator("lightning", min_person_score=0.0, device=device,
                                         backend=backend)
        self.look_every, self.max_followed = look_every, max_followed
        self.min_follow_score = min_follow_score
        self.variant, self.multipose, self.follow_person = "multipose-follow", True, False
        self.reset()

    @property
    def backend(self) -> str:
        return self.finder.backend

    def reset(self) -> None:
        """Start of a new video: nobody followed, MultiPose's input size chosen again."""
        self.finder.reset()
        self._people: FramePoses | None = None
        self._since_look = 0
        self._counts = {"looks": 0, "follows": 0}  # not plain attributes: extract's resume
        # cache keys on an estimator's plain settings, which must not change as it runs

    @property
    def looks(self) -> int:
        """Frames MultiPose looked at since :meth:`reset`."""
        return self._counts["looks"]

    @property
    def follows(self) -> int:
        """Frames on which Lightning followed people since :meth:`reset`."""
        return self._counts["follows"]

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FramePoses]:
        check_frames(frames)
        out: list[FramePoses] = []
        i = 0
        while i < len(frames):
            people = self._people
            if people is not None and 0 < len(people) <= self.max_followed:
                due = self._since_look >= self.look_every
                out.append(self._look_for_newcomers(frames[i]) if due else self._follow(frames[i]))
                i += 1
            else:  # the first frame, nobody to follow, or a crowd: MultiPose, batched
                n = 1 if people is None else len(frames) - i
                out.extend(self._look(frames[i:i + n]))
                i += n
        return out

    def _look(self, frames: Sequence[np.ndarray]) -> list[FramePoses]:
        found = [FramePoses(p.keypoints, p.scores, _keypoint_boxes(p.keypoints, p.scores),
                            p.box_scores) for p in self.finder(frames)]
        self._counts["looks"] += len(frames)
        self._people, self._since_look = found[-1], 1  # the next frame is one after a look
        return found

    def _look_for_newcomers(self, frame: np.ndarray) -> FramePoses:
        """Follow everyone as usual, and add the people MultiPose finds who are none of them
        (by pose): a followed person keeps Lightning's pose, so no one's joints jump between the
        two models every ``look_every`` frames."""
        followed = self._follow(frame)
        found = self._look([frame])[0]
        if len(followed) and len(found):
            found = found.select(~self._same_person(found, followed).any(1))
        poses = FramePoses(np.concatenate([followed.keypoints, found.keypoints]),
                           np.concatenate([followed.scores, found.scores]),
                           np.concatenate([followed.boxes, found.boxes]),
                           np.concatenate([followed.box_scores, found.box_scores]))
        self._people = poses
        return poses

    def _same_person(self, a: FramePoses, b: FramePoses) -> np.ndarray:
        """(len(a), len(b)) True where a pose of ``a`` and one of ``b`` are one person: keypoint
        OKS at the scale of b's box, over at least 4 joints seen in both."""
        wh = b.boxes[:, 2:] - b.boxes[:, :2]
        area = np.broadcast_to(wh.prod(1)[None], (len(a), len(b)))
        oks, joints = keypoint_oks(a.keypoints, a.scores, b.keypoints, b.scores, area)
        return (oks >= self.SAME_PERSON_OKS) & (joints >= 4)

    def _follow(self, frame: np.ndarray) -> FramePoses:
        h, w = frame.shape[:2]
        people = self._people
        crops = [crop_and_resize(frame, person_crop(kp, sc, h, w), self.follower.model.input_size)
                 for kp, sc in zip(people.keypoints, people.scores)]
        raw = self.follower.raw(np.stack([image for image, _ in crops]))
        found = [self.follower._to_poses(out[None], window) for out, (_, window) in zip(raw, crops)]
        keypoints = np.stack([p.keypoints[0] for p in found])
        scores = np.stack([p.scores[0] for p in found])
        mean = scores.mean(1)
        keep = mean >= self.min_follow_score
        boxes = _keypoint_boxes(keypoints, scores)
        candidates = FramePoses(keypoints, scores, boxes, mean)
        same = self._same_person(candidates, candidates)
        for a in np.argsort(-mean):  # crops that converged onto one person: keep the stronger
            if keep[a]:
                others = keep & same[a]
                others[a] = False
                keep &= ~others
        self._counts["follows"] += 1
        self._since_look += 1
        if not keep.all():
            self._since_look = self.look_every  # someone was lost: MultiPose looks next frame
        poses = FramePoses(keypoints[keep], scores[keep], boxes[keep], mean[keep])
        self._people = poses
        return poses
