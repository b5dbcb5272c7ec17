"""The estimator contract shared by every estimator and the tracker."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The names the command line and load_estimator accept (here, not in estimators.py, so that the
# CLI can list them without importing torch); multipose-follow: posrec.estimate.follow.
ESTIMATORS = ("lightning", "thunder", "multipose", "multipose-follow", "keypointrcnn")
BACKENDS = ("auto", "onnxruntime", "torch")  # where MoveNet's network and the action model run


@dataclass
class FramePoses:
    """Every person found in one frame, in input-pixel coordinates.

    Attributes:
        keypoints: float32 (P, 17, 2), COCO-17 order, (x, y) pixels of the input frame.
        scores: float32 (P, 17), per-keypoint confidence in [0, 1].
        boxes: float32 (P, 4), person boxes x1, y1, x2, y2 in pixels.
        box_scores: float32 (P,), person confidence in [0, 1].
        track_ids: int64 (P,), filled in by the tracker; -1 until then.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    track_ids: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, np.float32).reshape(-1, 17, 2)
        n = len(self.keypoints)
        self.scores = np.asarray(self.scores, np.float32).reshape(n, 17)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(n, 4)
        self.box_scores = np.asarray(self.box_scores, np.float32).reshape(n)
        if self.track_ids is None:
            self.track_ids = np.full(n, -1, np.int64)
        self.track_ids = np.asarray(self.track_ids, np.int64).reshape(n)

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def empty(cls) -> "FramePoses":
        return cls(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros((0, 4)), np.zeros(0))

    def select(self, index) -> "FramePoses":
        """The people at ``index`` (a mask or index array)."""
        return FramePoses(self.keypoints[index], self.scores[index], self.boxes[index],
                          self.box_scores[index], self.track_ids[index])
