"""Skeleton overlays drawn on frames (OpenCV, in place on RGB uint8 images)."""

from __future__ import annotations

import cv2
import numpy as np

from posrec.estimate.types import FramePoses

COCO17_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
COCO17_EDGES = ((0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
                (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))
# Tab10 colours (RGB) so each track keeps a recognisable colour.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def draw_poses(image: np.ndarray, poses: FramePoses, min_score: float = 0.2,
               draw_boxes: bool = True) -> np.ndarray:
    """Draw skeletons (and boxes with track ids) on an RGB uint8 image, in place; returns it."""
    scale = max(1, round(max(image.shape[:2]) / 500))
    for i in range(len(poses)):
        tid = int(poses.track_ids[i])
        color = PALETTE[(tid if tid >= 0 else i) % len(PALETTE)]
        kp, sc = poses.keypoints[i], poses.scores[i]
        for a, b in COCO17_EDGES:
            if sc[a] >= min_score and sc[b] >= min_score:
                cv2.line(image, _pt(kp[a]), _pt(kp[b]), color, 2 * scale, cv2.LINE_AA)
        for j in np.flatnonzero(sc >= min_score):
            cv2.circle(image, _pt(kp[j]), 3 * scale, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(image, _pt(kp[j]), 3 * scale, color, scale, cv2.LINE_AA)
        if draw_boxes:
            x1, y1, x2, y2 = poses.boxes[i]
            cv2.rectangle(image, _pt((x1, y1)), _pt((x2, y2)), color, scale)
            label = f"#{tid} {poses.box_scores[i]:.2f}" if tid >= 0 else f"{poses.box_scores[i]:.2f}"
            cv2.putText(image, label, _pt((x1, max(y1 - 4, 10))), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * scale, color, scale, cv2.LINE_AA)
    return image


def _pt(xy) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))
