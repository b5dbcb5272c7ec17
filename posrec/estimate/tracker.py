"""Frame-to-frame identity for the people an estimator finds: who is who across a video.

:class:`PoseTracker` links each frame's detections to the live tracks by Hungarian assignment on a
similarity that mixes keypoint OKS (COCO sigmas, left/right-swap invariant) and box IoU, after
moving each track along its constant-velocity prediction so that people who walk past each other
do not swap; a strong box overlap alone keeps an id through a change of pose. A track that
finds no match survives ``max_missed`` frames (two seconds by default). :func:`tracks_to_arrays`
turns the tracked frames into the (M, T, V, C) arrays of a PYSKL annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from posrec.estimate.types import FramePoses
from posrec.skeleton import get_layout

# COCO-17 with left and right swapped: lying and side-view bodies are often read mirrored.
_COCO_FLIP = get_layout("coco17").flip_index

# Per-keypoint OKS constants of COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips,
# knees, ankles): how far a keypoint may stray, relative to the person's size.
COCO_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
                        1.07, 1.07, 0.87, 0.87, 0.89, 0.89], np.float32) / 10.0


def _intersection(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas (N, K) of boxes a (N, 4) and b (K, 4), xyxy, and their areas."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter, area_a, area_b


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N, 4) and b (K, 4), xyxy pixels -> (N, K) in [0, 1]."""
    inter, area_a, area_b = _intersection(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def box_overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area (N, K) in [0, 1]: 1 where one box holds the other."""
    inter, area_a, area_b = _intersection(a, b)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.where(smaller > 0, inter / np.maximum(smaller, 1e-9), 0.0).astype(np.float32)


def keypoint_oks(kp_a: np.ndarray, score_a: np.ndarray, kp_b: np.ndarray, score_b: np.ndarray,
                 area: np.ndarray, score_threshold: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Object keypoint similarity between poses a (N, 17, 2) and b (K, 17, 2), pixels.

    ``area`` (N, K) is the squared object scale in pixels² (here from the boxes). Only keypoints
    scored >= ``score_threshold`` in both poses count. Returns OKS (N, K) in [0, 1] and the number
    of keypoints it was computed over (N, K); where that is 0 the OKS is 0 and meaningless.
    """
    d2 = np.sum((kp_a[:, None] - kp_b[None, :]) ** 2, axis=-1)  # (N, K, 17)
    k2 = (2.0 * COCO_SIGMAS) ** 2
    e = d2 / (2.0 * np.maximum(area, 1.0)[..., None] * k2)
    vis = (score_a[:, None] >= score_threshold) & (score_b[None, :] >= score_threshold)
    n = vis.sum(axis=-1)
    oks = np.where(vis, np.exp(-e), 0.0).sum(axis=-1) / np.maximum(n, 1)
    return oks.astype(np.float32), n


@dataclass
class _Track:
    id: int
    keypoints: np.ndarray  # (17, 2) last matched pose, pixels
    scores: np.ndarray  # (17,)
    box: np.ndarray  # (4,) xyxy pixels
    last_seen: int  # frame index of the last match
    hits: int = 1
    velocity: np.ndarray | None = None  # (2,) box-centre motion, pixels per frame

    def shift(self, frame: int, horizon: int) -> np.ndarray:
        """Predicted displacement (2,) since the last match, at constant velocity for at most
        ``horizon`` frames: people stop and turn, so a long extrapolation only drifts."""
        if self.velocity is None:
            return np.zeros(2, np.float32)
        return self.velocity * float(min(frame - self.last_seen, horizon))


def _expand(boxes: np.ndarray, ratio: float) -> np.ndarray:
    """Boxes (N, 4) grown by ``ratio`` of their width/height on each side."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return boxes + ratio * np.concatenate([-wh, wh], axis=1)


def _centre(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2.0


class PoseTracker:
    """Assigns stable integer ids (0, 1, 2, ... in order of appearance) to people across frames.

    Args:
        fps: frames per second (the rate poses arrive at), used for the default
            ``max_missed`` and for the constant-velocity prediction's horizon (a third of a
            second); 0 or None means 30.
        max_missed: frames a track survives without a match (default: two seconds of frames).
        min_similarity: matches below this similarity in [0, 1] are refused.
        new_track_score: an unmatched detection needs this box score to start a track; weaker
            ones may still continue an existing track, otherwise they are dropped.
        keypoint_threshold: keypoints scored below this are ignored by OKS.
        oks_weight: similarity = oks_weight * OKS + (1 - oks_weight) * IoU; IoU alone where the
            two poses share no confident keypoint.
        predict_motion: move a track along its box-centre velocity before matching.
        velocity_smoothing: weight of the newest measurement in the velocity's running mean.
        iou_buffer: boxes are grown by this fraction of their size on each side before IoU, so
            small or thin people survive box jitter and motion (buffered IoU, as in C-BIoU).
        reid_distance: second stage for tracks that lost their person (occlusion, missed
            detections): an unmatched detection whose box centre lies within this many track
            heights of the track's last centre, at a similar height, takes the track back.
        box_overlap: second stage for tracks left without a match: a detection left over whose
            box overlaps the track's box by at least this fraction of the smaller of the two
            takes the track, whatever the poses say, so a person who stays in place keeps the
            id when the estimator reads the pose differently (a lying body read upside down,
            joints lost so the box shrinks). Never overrides a match of the first stage; None
            turns it off.
        flip_invariant: OKS is also taken against the detection with left and right swapped,
            and the better of the two counts.

    The defaults were chosen on synthetic motion of real COCO people (jitter, misses, crossing).

    Feed frames in order with :meth:`update`; call :meth:`reset` between videos.
    """

    def __init__(self, fps: float | None = 30.0, max_missed: int | None = None,
                 min_similarity: float = 0.2, new_track_score: float = 0.3,
                 keypoint_threshold: float = 0.2, oks_weight: float = 0.7,
                 predict_motion: bool = True, velocity_smoothing: float = 0.3,
                 iou_buffer: float = 0.3, reid_distance: float = 0.5,
                 box_overlap: float | None = 0.7, flip_invariant: bool = True) -> None:
        fps = fps if fps and fps > 0 else 30.0
        self.max_missed = int(round(2.0 * fps)) if max_missed is None else int(max_missed)
        # a third of a second of constant-velocity prediction, whatever the pose rate (10
        # frames at 30 fps, 3 when `posrec label` estimates every third frame)
        self.motion_horizon = max(1, int(round(fps / 3)))
        self.reid_distance = reid_distance
        self.min_similarity = min_similarity
        self.new_track_score = new_track_score
        self.keypoint_threshold = keypoint_threshold
        self.oks_weight = oks_weight
        self.predict_motion = predict_motion
        self.velocity_smoothing = velocity_smoothing
        self.iou_buffer = iou_buffer
        self.box_overlap = box_overlap
        self.flip_invariant = flip_invariant
        self.reset()

    def reset(self) -> None:
        """Forget all tracks; ids start again at 0."""
        self.tracks: list[_Track] = []
        self.frame_index = -1
        self._next_id = 0

    def similarity(self, poses: FramePoses) -> np.ndarray:
        """Similarity (tracks, detections) in [0, 1] of the live tracks, as predicted for the
        next frame, to ``poses``."""
        frame = self.frame_index + 1
        if not self.tracks or not len(poses):
            return np.zeros((len(self.tracks), len(poses)), np.float32)
        h = self.motion_horizon
        shifts = np.stack([t.shift(frame, h) if self.predict_motion else np.zeros(2, np.float32)
                           for t in self.tracks]).astype(np.float32)
        t_boxes = np.stack([t.box for t in self.tracks]) + np.tile(shifts, 2)
        t_kps = np.stack([t.keypoints for t in self.tracks]) + shifts[:, None, :]
        t_scores = np.stack([t.scores for t in self.tracks])
        iou = box_iou(_expand(t_boxes, self.iou_buffer), _expand(poses.boxes, self.iou_buffer))
        wh_t = np.clip(t_boxes[:, 2:] - t_boxes[:, :2], 0, None)
        wh_d = np.clip(poses.boxes[:, 2:] - poses.boxes[:, :2], 0, None)
        # Object scale from the boxes: the mean of both areas, so neither side's box noise rules.
        area = (np.prod(wh_t, axis=1)[:, None] + np.prod(wh_d, axis=1)[None, :]) / 2.0
        oks, n = keypoint_oks(t_kps, t_scores, poses.keypoints, poses.scores, area,
                              self.keypoint_threshold)
        if self.flip_invariant:
            flipped, n_flipped = keypoint_oks(t_kps, t_scores, poses.keypoints[:, _COCO_FLIP],
                                              poses.scores[:, _COCO_FLIP], area, self.keypoint_threshold)
            oks, n = np.maximum(oks, flipped), np.maximum(n, n_flipped)
        w = self.oks_weight
        sim = np.where(n > 0, w * oks + (1.0 - w) * iou, iou)
        return sim.astype(np.float32)

    def update(self, poses: FramePoses) -> FramePoses:
        """Track the next frame's detections; returns them with ``track_ids`` filled.

        The result keeps the detections that matched a track or started one, in their input
        order; unmatched detections below ``new_track_score`` are dropped.
        """
        sim = self.similarity(poses)
        self.frame_index += 1
        frame = self.frame_index
        ids = np.full(len(poses), -1, np.int64)
        if sim.size:
            # Pairs under the gate count as 0, so they cannot displace a valid pair elsewhere.
            gated = np.where(sim >= self.min_similarity, sim, 0.0)
            rows, cols = linear_sum_assignment(gated, maximize=True)
            for r, c in zip(rows, cols):
                if sim[r, c] >= self.min_similarity:
                    self._match(self.tracks[r], poses, c, frame)
                    ids[c] = self.tracks[r].id
            self._rematch_by_box(poses, ids, frame)
            self._reidentify(poses, ids, frame)
        # New tracks, strongest detection first so ids follow confidence within a frame.
        for c in np.argsort(-poses.box_scores, kind="stable"):
            if ids[c] < 0 and poses.box_scores[c] >= self.new_track_score:
                self.tracks.append(_Track(self._next_id, poses.keypoints[c].copy(),
                                          poses.scores[c].copy(), poses.boxes[c].copy(), frame))
                ids[c] = self._next_id
                self._next_id += 1
        self.tracks = [t for t in self.tracks if frame - t.last_seen <= self.max_missed]
        keep = np.flatnonzero(ids >= 0)
        out = poses.select(keep)
        out.track_ids = ids[keep]
        return out

    def _rematch_by_box(self, poses: FramePoses, ids: np.ndarray, frame: int) -> None:
        """Tracks seen last frame but unmatched now take a free detection that stays in their
        box: overlap over the smaller box's area >= ``box_overlap`` (Hungarian on it)."""
        live = [t for t in self.tracks if t.last_seen == frame - 1]
        free = np.flatnonzero(ids < 0)
        if self.box_overlap is None or not live or not len(free):
            return
        overlap = box_overlap_of_smaller(np.stack([t.box for t in live]), poses.boxes[free])
        rows, cols = linear_sum_assignment(np.where(overlap >= self.box_overlap, overlap, 0.0),
                                           maximize=True)
        for r, c in zip(rows, cols):
            if overlap[r, c] >= self.box_overlap:
                self._match(live[r], poses, free[c], frame)
                ids[free[c]] = live[r].id

    def _reidentify(self, poses: FramePoses, ids: np.ndarray, frame: int) -> None:
        """Match lost tracks (not seen last frame) to the detections left, by centre distance
        relative to body height: after an occlusion the pose and box have changed too much for
        OKS or IoU, but the person is still about where they were last seen."""
        lost = [t for t in self.tracks if t.last_seen < frame - 1]
        free = np.flatnonzero(ids < 0)
        if not lost or not len(free):
            return
        shifts = np.stack([t.shift(frame, self.motion_horizon) for t in lost])
        t_box = np.stack([t.box for t in lost]) + np.tile(shifts, 2)
        d_box = poses.boxes[free]
        # Body size as the box's longer side, so that lying and side-view bodies count fully.
        t_size = np.maximum((t_box[:, 2:] - t_box[:, :2]).max(1), 1.0)[:, None]
        d_size = np.maximum((d_box[:, 2:] - d_box[:, :2]).max(1), 1.0)[None, :]
        dist = np.linalg.norm(((t_box[:, None, :2] + t_box[:, None, 2:]) - (d_box[None, :, :2] + d_box[None, :, 2:])) / 2, axis=-1)
        sim = 1.0 - dist / (self.reid_distance * t_size)
        sim[(d_size / t_size > 1.5) | (t_size / d_size > 1.5)] = 0.0
        rows, cols = linear_sum_assignment(np.maximum(sim, 0.0), maximize=True)
        for r, c in zip(rows, cols):
            if sim[r, c] > 0:
                self._match(lost[r], poses, free[c], frame)
                ids[free[c]] = lost[r].id

    def _match(self, track: _Track, poses: FramePoses, c: int, frame: int) -> None:
        gap = frame - track.last_seen
        measured = (_centre(poses.boxes[c]) - _centre(track.box)) / max(gap, 1)
        if track.velocity is None:
            track.velocity = measured.astype(np.float32)
        else:  # exponential smoothing: box centres jitter by a few pixels from frame to frame
            a = self.velocity_smoothing
            track.velocity = (a * measured + (1.0 - a) * track.velocity).astype(np.float32)
        track.keypoints = poses.keypoints[c].copy()
        track.scores = poses.scores[c].copy()
        track.box = poses.boxes[c].copy()
        track.last_seen = frame
        track.hits += 1


def track_poses(frames: Sequence[FramePoses], fps: float | None = 30.0, **kwargs) -> list[FramePoses]:
    """Run a fresh :class:`PoseTracker` (``kwargs`` are its options) over a whole video."""
    tracker = PoseTracker(fps=fps, **kwargs)
    return [tracker.update(f) for f in frames]


def tracks_to_arrays(frames: Sequence[FramePoses], num_frames: int | None = None,
                     max_people: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracked frames -> PYSKL annotation arrays.

    Args:
        frames: FramePoses per frame with ``track_ids`` set (people with id -1 are ignored).
        num_frames: T, at least len(frames) (default len(frames)); frames past the end are empty.
        max_people: keep only the first M tracks of the order below.

    Returns:
        keypoint float32 (M, T, 17, 2) pixels, keypoint_score float32 (M, T, 17), and
        track_ids int64 (M,). Tracks are ordered by the number of frames they cover, longest
        first (ties: earlier first appearance); zeros where a person is absent. M may be 0.
    """
    T = len(frames) if num_frames is None else int(num_frames)
    if T < len(frames):
        raise ValueError(f"num_frames={T} is less than the {len(frames)} frames given")
    count: dict[int, int] = {}
    first: dict[int, int] = {}
    for t, fp in enumerate(frames):
        for tid in fp.track_ids:
            tid = int(tid)
            if tid >= 0:
                count[tid] = count.get(tid, 0) + 1
                first.setdefault(tid, t)
    order = sorted(count, key=lambda i: (-count[i], first[i], i))
    if max_people is not None:
        order = order[:max_people]
    row = {tid: m for m, tid in enumerate(order)}
    keypoint = np.zeros((len(order), T, 17, 2), np.float32)
    score = np.zeros((len(order), T, 17), np.float32)
    for t, fp in enumerate(frames):
        for p, tid in enumerate(fp.track_ids):
            m = row.get(int(tid))
            if m is not None:
                keypoint[m, t] = fp.keypoints[p]
                score[m, t] = fp.scores[p]
    return keypoint, score, np.array(order, np.int64)
