"""Keypoint accuracy against COCO-style ground truth: object keypoint similarity (OKS)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from posrec.io.images import read_image

# Per-keypoint standard deviations of COCO-17 (cocoapi's ``kpt_oks_sigmas``).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                        .87, .87, .89, .89]) / 10.0


def oks(gt: np.ndarray, area: float, dt: np.ndarray) -> float:
    """COCO OKS of one detection against one ground-truth person.

    Args:
        gt: (17, 3) ground truth x, y, visibility (v > 0 counts).
        area: the ground truth's segment area in pixels^2 (COCO's ``area``).
        dt: (17, 2) detected x, y in pixels.
    """
    visible = gt[:, 2] > 0
    if not visible.any():
        return 0.0
    d2 = ((dt - gt[:, :2]) ** 2).sum(1)
    e = d2 / (2 * (2 * COCO_SIGMAS) ** 2 * (area + np.spacing(1)))
    return float(np.exp(-e[visible]).mean())


@dataclass
class PersonOKS:
    image: str
    gt_index: int
    oks: float


def evaluate_coco(estimator, annotation_file: Path, image_dir: Path | None = None) -> list[PersonOKS]:
    """OKS of every ground-truth person (with at least one labelled keypoint) in a COCO file.

    Each image's detections are matched one-to-one to its people by maximum total OKS
    (Hungarian assignment); a person left unmatched scores 0.
    """
    annotation_file = Path(annotation_file)
    image_dir = Path(image_dir or annotation_file.parent)
    spec = json.loads(annotation_file.read_text())
    results = []
    for image in spec["images"]:
        people = [a for a in spec["annotations"]
                  if a["image_id"] == image["id"] and a.get("num_keypoints", 0) > 0]
        if not people:
            continue
        poses = estimator([read_image(image_dir / image["file_name"])])[0]
        gts = [np.asarray(a["keypoints"], np.float64).reshape(17, 3) for a in people]
        sim = np.array([[oks(g, a["area"], d) for d in poses.keypoints]
                        for g, a in zip(gts, people)]).reshape(len(people), len(poses))
        scores = np.zeros(len(people))
        if len(poses):
            rows, cols = linear_sum_assignment(-sim)
            scores[rows] = sim[rows, cols]
        results += [PersonOKS(image["file_name"], i, float(s)) for i, s in enumerate(scores)]
    return results
