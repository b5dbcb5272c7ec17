"""PoseTracker on synthetic motion of real COCO keypoints and of a synthetic walking figure.

Synthetic because real per-frame detections only exist once an estimator runs on the videos;
the real-video tracking tests (basketball, NTU hugging) live with the estimator tests.
"""

import json

import numpy as np
import pytest

from posrec.estimate.tracker import (PoseTracker, box_iou, keypoint_oks, track_poses,
                                     tracks_to_arrays)
from posrec.estimate.types import FramePoses
from posrec.skeleton import get_layout

# A standing COCO-17 figure in units of its height, centred on the hips (x right, y down).
_FIGURE = np.array([
    [0.00, -0.45], [-0.02, -0.47], [0.02, -0.47], [-0.04, -0.46], [0.04, -0.46],  # face
    [-0.11, -0.33], [0.11, -0.33], [-0.14, -0.15], [0.14, -0.15], [-0.15, 0.00], [0.15, 0.00],
    [-0.07, 0.02], [0.07, 0.02], [-0.08, 0.25], [0.08, 0.25], [-0.08, 0.48], [0.08, 0.48],
], np.float32)


def _person(cx, cy, height, rng=None, jitter=0.0):
    kp = _FIGURE * height + [cx, cy]
    if rng is not None:
        kp = kp + rng.normal(0, jitter, kp.shape)
    box = np.r_[kp.min(0) - 0.05 * height, kp.max(0) + 0.05 * height]
    return kp, box


def _frame(people) -> FramePoses:
    """FramePoses from a list of (keypoints (17, 2), box (4,)) with confident scores."""
    if not people:
        return FramePoses.empty()
    kps, boxes = zip(*people)
    n = len(people)
    return FramePoses(np.stack(kps), np.full((n, 17), 0.9), np.stack(boxes), np.full(n, 0.9))


def _crossing_frames(occluded=(25,)):
    """A walks right, B walks left at 8 px/frame, 30 fps; they pass at frame 25, where the
    detector sees only A in front. Returns frames and, per frame, the true person per detection."""
    rng = np.random.default_rng(1)
    frames, truth = [], []
    for t in range(50):
        a = _person(100 + 8 * t, 300, 200, rng, 1.0)
        b = _person(500 - 8 * t, 306, 190, rng, 1.0)
        people, who = ([a], ["A"]) if t in occluded else ([b, a], ["B", "A"])
        frames.append(_frame(people))
        truth.append(who)
    return frames, truth


def _ids_by_person(tracked, truth):
    ids = {}
    for fp, who in zip(tracked, truth):
        assert len(fp) == len(who)
        for tid, name in zip(fp.track_ids.tolist(), who):
            ids.setdefault(name, set()).add(tid)
    return ids


def test_crossing_people_keep_their_ids():
    frames, truth = _crossing_frames()
    tracked = track_poses(frames, fps=30)
    ids = _ids_by_person(tracked, truth)
    assert ids == {"B": {0}, "A": {1}} or ids == {"A": {0}, "B": {1}}
    # The test is meaningful: without the constant-velocity prediction they swap after the crossing.
    swapped = _ids_by_person(track_poses(frames, fps=30, predict_motion=False), truth)
    assert len(swapped["A"]) > 1 or len(swapped["B"]) > 1


def test_track_survives_short_miss_and_expires_after_max_missed():
    rng = np.random.default_rng(2)
    walk = [_frame([_person(100 + 5 * t, 200, 150, rng, 1.0)]) for t in range(40)]
    gap3 = [f if not 10 <= t < 13 else FramePoses.empty() for t, f in enumerate(walk)]
    tracked = track_poses(gap3, fps=30)
    assert {int(i) for f in tracked for i in f.track_ids} == {0}
    assert [len(f) for f in tracked[10:13]] == [0, 0, 0]
    # Gone longer than max_missed (2 s at 30 fps = 60 frames): a new track.
    walk = [_frame([_person(100 + 1 * t, 200, 150, rng, 1.0)]) for t in range(80)]
    gap70 = [f if not 5 <= t < 75 else FramePoses.empty() for t, f in enumerate(walk)]
    tracked = track_poses(gap70, fps=30)
    assert tracked[4].track_ids.tolist() == [0] and tracked[75].track_ids.tolist() == [1]
    # Within max_missed, the lost track takes its person back though 20 frames have passed.
    gap20 = [f if not 10 <= t < 30 else FramePoses.empty() for t, f in enumerate(walk)]
    tracked = track_poses(gap20, fps=30)
    assert tracked[9].track_ids.tolist() == [0] and tracked[30].track_ids.tolist() == [0]
    assert PoseTracker(fps=60).max_missed == 120 and PoseTracker(fps=0).max_missed == 60


def test_low_confidence_detections_continue_tracks_but_start_none():
    rng = np.random.default_rng(3)
    tracker = PoseTracker(fps=30, new_track_score=0.5)
    first = _frame([_person(200, 200, 150, rng, 1.0)])
    assert tracker.update(first).track_ids.tolist() == [0]
    weak = _frame([_person(203, 200, 150, rng, 1.0), _person(600, 200, 150, rng, 1.0)])
    weak.box_scores[:] = 0.3
    out = tracker.update(weak)
    assert out.track_ids.tolist() == [0] and out.boxes[0, 0] < 300  # the far one is dropped
    # Keypoints below the threshold are ignored by OKS: wild low-score points change nothing.
    noisy = _frame([_person(206, 200, 150, rng, 1.0)])
    noisy.keypoints[0, :8] += 300
    noisy.scores[0, :8] = 0.05
    assert tracker.update(noisy).track_ids.tolist() == [0]


def test_real_coco_people_jittered_across_frames_keep_ids(shared_data):
    # Ground-truth people of real COCO images, moved and jittered frame by frame (synthetic
    # motion), detections shuffled and sometimes missed: each person must keep one id.
    coco = json.loads((shared_data / "keypoints" / "coco" / "test_coco.json").read_text())
    rng = np.random.default_rng(0)
    for image_id in (196141, 197388):  # the two images with 5 people, some overlapping
        people = [a for a in coco["annotations"] if a["image_id"] == image_id]
        kp0 = np.array([a["keypoints"] for a in people], np.float32).reshape(-1, 17, 3)
        x, y, w, h = np.array([a["bbox"] for a in people], np.float32).T
        box0 = np.stack([x, y, x + w, y + h], 1)
        velocity = rng.uniform(-2, 2, (len(people), 2))
        frames, truth = [], []
        for t in range(30):
            present = [p for p in range(len(people)) if t < 2 or rng.random() > 0.1]
            rng.shuffle(present)
            shift = velocity[present] * t
            kps = kp0[present, :, :2] + shift[:, None] + rng.normal(0, 1.5, (len(present), 17, 2))
            boxes = box0[present] + np.tile(shift, 2) + rng.normal(0, 1.5, (len(present), 4))
            scores = np.where(kp0[present, :, 2] > 0, rng.uniform(0.5, 1.0, (len(present), 17)), 0.0)
            frames.append(FramePoses(kps, scores, boxes, np.full(len(present), 0.9)))
            truth.append(present)
        tracked = track_poses(frames, fps=30)
        ids = _ids_by_person(tracked, truth)
        assert all(len(v) == 1 for v in ids.values()), (image_id, ids)
        assert sorted(i for v in ids.values() for i in v) == list(range(len(people)))


def test_tracks_to_arrays():
    a, b = _person(100, 100, 100), _person(300, 100, 100)
    frames = [_frame([a]), _frame([a, b]), _frame([b]), _frame([b]), FramePoses.empty()]
    for f, ids in zip(frames, ([5], [5, 9], [9], [9], [])):
        f.track_ids = np.array(ids, np.int64)
    keypoint, score, ids = tracks_to_arrays(frames, num_frames=6)
    assert keypoint.shape == (2, 6, 17, 2) and score.shape == (2, 6, 17)
    assert keypoint.dtype == np.float32 and score.dtype == np.float32
    assert ids.tolist() == [9, 5]  # 9 covers 3 frames, 5 covers 2
    assert np.allclose(keypoint[0, 1:4], b[0]) and np.all(keypoint[0, [0, 4, 5]] == 0)
    assert np.allclose(keypoint[1, :2], a[0]) and np.all(score[1, 2:] == 0)
    assert tracks_to_arrays(frames, max_people=1)[0].shape == (1, 5, 17, 2)
    empty = tracks_to_arrays([FramePoses.empty()] * 3)
    assert empty[0].shape == (0, 3, 17, 2) and empty[2].shape == (0,)
    with pytest.raises(ValueError):
        tracks_to_arrays(frames, num_frames=2)


def test_similarity_helpers():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    iou = box_iou(boxes, boxes)
    assert np.allclose(np.diag(iou), 1) and iou[0, 1] == pytest.approx(1 / 3) and iou[0, 2] == 0
    kp, _ = _person(50, 50, 100)
    ones = np.ones((1, 17), np.float32)
    oks, n = keypoint_oks(kp[None], ones, kp[None] + 3, ones, np.full((1, 1), 100.0 * 40))
    assert 0 < oks[0, 0] < 1 and n[0, 0] == 17
    oks, n = keypoint_oks(kp[None], ones * 0.1, kp[None], ones, np.full((1, 1), 4000.0))
    assert n[0, 0] == 0


def _lying_person_frames(shared_data):
    """A still person lying on the floor, seen by a single-pose estimator whose reading of the
    pose flips (constructed: no shared clip has a person lying still, so the pose is the real
    COCO person 442619 of image 785, all 17 joints labelled, turned 90 degrees and jittered).

    Frames 0-39 at 30 fps. Frames 10-15: the body read upside down (head where the feet are,
    and mirrored), as MoveNet does on lying bodies, with the wrists and ankles lost (low
    scores); frames 24-29: read mirrored left/right with the forearms and lower legs lost. The
    boxes come from the confident keypoints, as for the single-pose estimators, so they shrink
    and shift while the person stays where they are."""
    coco = json.loads((shared_data / "keypoints" / "coco" / "test_coco.json").read_text())
    person = next(a for a in coco["annotations"] if a["id"] == 442619)
    kp = np.array(person["keypoints"], np.float32).reshape(17, 3)[:, :2]
    centre = kp.mean(0)
    lying = (kp - centre)[:, ::-1] * [1, -1] + [400, 300]  # rotated 90 degrees, head to the right
    flip = get_layout("coco17").flip_index
    rng = np.random.default_rng(4)
    frames = []
    for t in range(40):
        pose, score = lying.copy(), np.full(17, 0.8, np.float32)
        if 10 <= t < 16:
            pose[:, 0] = 2 * 400 - pose[:, 0]  # head and feet swapped along the body
            pose = pose[flip]
            score[[9, 10, 15, 16]] = 0.1  # wrists, ankles
        if 24 <= t < 30:
            pose = pose[flip]
            score[[7, 8, 9, 10, 13, 14, 15, 16]] = 0.1  # elbows, wrists, knees, ankles
        pose = pose + rng.normal(0, 1.5, pose.shape)
        confident = pose[score >= 0.2]
        box = np.r_[confident.min(0), confident.max(0)]
        frames.append(FramePoses(pose[None], score[None], box[None], [score.mean()]))
    return frames


def test_still_person_keeps_one_id_when_the_pose_reading_flips(shared_data):
    frames = _lying_person_frames(shared_data)
    tracked = track_poses(frames, fps=30)
    assert [f.track_ids.tolist() for f in tracked] == [[0]] * 40
    # Meaningful: on pose similarity alone (without the box stage) the upside-down reading
    # starts a new track, as the "three ids for one lying person" reported on real footage.
    old = track_poses(frames, fps=30, box_overlap=None, flip_invariant=False)
    assert {int(f.track_ids[0]) for f in old[10:16]} == {1}
    # A left/right-mirrored reading of the same pose is as similar as the pose itself.
    tracker = PoseTracker(fps=30)
    tracker.update(frames[0])
    mirrored = frames[1].select([0])
    flip = get_layout("coco17").flip_index
    mirrored.keypoints, mirrored.scores = mirrored.keypoints[:, flip], mirrored.scores[:, flip]
    assert tracker.similarity(mirrored)[0, 0] == pytest.approx(tracker.similarity(frames[1])[0, 0])
    tracker.flip_invariant = False
    assert tracker.similarity(mirrored)[0, 0] < 0.6 * tracker.similarity(frames[1])[0, 0]


@pytest.mark.parametrize("fps", [30, 10])
def test_walker_who_stops_while_hidden_keeps_the_id_at_any_pose_rate(fps):
    """The constant-velocity prediction is capped at a third of a second, not at 10 frames: a
    person walking at 240 px/s who stops just after vanishing behind something for 0.8 s is
    found again where they stopped at 30 poses a second and at 10 (`posrec label --every 3`).
    At 10 fps a 10-frame cap would predict them 1 s on, 190 px past where they stand."""
    step = 240 / fps
    gap = int(0.8 * fps)
    frames = [_frame([_person(100 + step * t, 300, 200)]) for t in range(fps)]
    stop = 100 + step * fps  # one more step, then still
    frames += [_frame([])] * gap + [_frame([_person(stop, 300, 200)])] * 5
    ids = {int(i) for fp in track_poses(frames, fps=fps) for i in fp.track_ids}
    assert ids == {0}
    assert PoseTracker(fps=fps).motion_horizon == round(fps / 3)
