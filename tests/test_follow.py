"""FollowingMultiPose: MultiPose finds people, Lightning follows each on a crop (real clips/photos)."""

from pathlib import Path

import numpy as np
import pytest

from posrec.estimate.estimators import load_estimator
from posrec.estimate.follow import FollowingMultiPose, person_crop
from posrec.io.images import read_image
from posrec.io.video import open_video


def _frames(path: Path, n: int) -> list[np.ndarray]:
    with open_video(path) as video:
        return [rgb for _, (_, rgb) in zip(range(n), video.timed())]


def _median_distance(a, b) -> float:
    """Median keypoint distance of the first person of a and b, over the box diagonal."""
    seen = (a.scores[0] >= 0.3) & (b.scores[0] >= 0.3)
    diagonal = np.hypot(*(a.boxes[0, 2:] - a.boxes[0, :2]))
    return float(np.median(np.linalg.norm(a.keypoints[0][seen] - b.keypoints[0][seen], axis=1)) / diagonal)


def test_follows_the_tai_chi_man_between_multipose_looks(shared_data):
    frames = _frames(shared_data / "videos" / "tai_chi.mp4", 20)
    follow = FollowingMultiPose(look_every=8)
    found = follow(frames[:12]) + follow(frames[12:])  # state carries across calls
    assert (follow.looks, follow.follows) == (3, 19)  # MultiPose on frames 0, 8 and 16
    assert [len(p) for p in found] == [1] * 20
    # Lightning on the crop agrees with MultiPose on the whole frame (measured median 0.9 % of
    # the body's diagonal on this clip; jitter between frames is of that order)
    reference = load_estimator("multipose")(frames)
    assert max(_median_distance(r, f) for r, f in zip(reference, found)) < 0.04


def test_a_lost_person_makes_multipose_look_again(shared_data):
    person = read_image(shared_data / "images" / "camera.png")
    nobody = np.zeros_like(person)  # synthetic: a black frame, the one way to lose him for sure
    follow = FollowingMultiPose(look_every=100)
    first, lost, again = follow([person]) + follow([nobody]) + follow([person])
    assert len(first) == 1 and len(lost) == 0 and len(again) == 1
    assert (follow.looks, follow.follows) == (2, 1)  # nobody left to follow: MultiPose looked


def test_a_crowd_is_left_to_multipose(shared_data):
    image = read_image(shared_data / "keypoints" / "coco" / "000000196141.jpg")  # 4 people
    follow = FollowingMultiPose(max_followed=1)
    follow([image, image, image])
    assert (follow.looks, follow.follows) == (3, 0)
    follow = FollowingMultiPose(max_followed=12)
    first, second = follow([image, image])
    assert (follow.looks, follow.follows) == (1, 1) and len(second) >= 1


def test_person_crop_is_a_square_around_the_person_never_the_frame():
    # synthetic keypoints: a standing body 100 px tall centred at (200, 150) in a 640x480 frame
    kp = np.zeros((17, 2), np.float32)
    kp[:, 0] = 200 + np.linspace(-20, 20, 17)
    kp[:, 1] = np.linspace(100, 200, 17)
    kp[[5, 6], 1], kp[[11, 12], 1] = 120, 160  # shoulders, hips
    y1, x1, y2, x2 = person_crop(kp, np.ones(17), 480, 640)
    assert y2 * 480 - y1 * 480 == pytest.approx(x2 * 640 - x1 * 640)  # square in pixels
    assert y1 * 480 <= 100 and y2 * 480 >= 200 and x1 * 640 <= 180 and x2 * 640 >= 220
    assert (y2 - y1) * 480 < 200  # about the body, not the frame
    hidden = np.full(17, 0.05)
    hidden[:5] = 0.9  # only the head is seen: a square 1.25x its keypoints' box
    y1, x1, y2, x2 = person_crop(kp, hidden, 480, 640)
    assert 32 - 1e-3 <= (y2 - y1) * 480 < 100  # at least the 16 px half-side


def test_its_settings_do_not_change_as_it_runs(shared_data):
    """extract's resume cache keys on an estimator's plain settings."""
    from posrec.extract import estimator_settings

    follow = FollowingMultiPose()
    before = estimator_settings(follow)
    follow(_frames(shared_data / "videos" / "tai_chi.mp4", 3))
    assert follow.looks + follow.follows == 3 and estimator_settings(follow) == before
    assert before["variant"] == "multipose-follow"
