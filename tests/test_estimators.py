"""Estimators on real photos: keypoints land where a person sees them.

The regions below were read off the photos by eye (gridded views of the images, not the models'
outputs), in pixels of the 512x512 originals: (x1, y1, x2, y2).
"""

import errno
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

import posrec.paths
from posrec import cli
from posrec.estimate.estimators import KeypointRCNNEstimator, load_estimator
from posrec.estimate.metrics import evaluate_coco, oks
from posrec.estimate.movenet import _notice_sha256, load_movenet, verify_weights
from posrec.errors import PosrecError
from posrec.io.images import read_image
from posrec.paths import WEIGHTS_DIR

NOSE, L_EYE, R_EYE, L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST = 0, 1, 2, 5, 6, 9, 10
MOVENETS = ["lightning", "thunder", "multipose"]

# astronaut.png: seated, upper body; the face (hairline to chin) and the hands at the bottom.
ASTRONAUT_FACE = (170, 75, 285, 200)
ASTRONAUT_CHIN_Y = 195
ASTRONAUT_HANDS = (40, 380, 340, 512)  # both forearms/hands lie in the lower quarter
# camera.png: man filming, in profile facing right; legs and feet are out of the frame.
CAMERA_FACE = (175, 105, 270, 200)
CAMERA_EYE_LINE_Y = 150


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> dict[str, np.ndarray]:
    return {n: read_image(shared_data / "images" / f"{n}.png") for n in ("astronaut", "camera")}


def _inside(xy, box) -> bool:
    x, y = xy
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


@pytest.mark.parametrize("variant", MOVENETS)
def test_face_and_shoulders_on_real_photos(photos, variant):
    est = load_estimator(variant)
    astro, cam = est([photos["astronaut"], photos["camera"]])
    assert len(astro) >= 1 and len(cam) >= 1
    for poses, face in ((astro, ASTRONAUT_FACE), (cam, CAMERA_FACE)):
        best = int(np.argmax(poses.box_scores))
        kp = poses.keypoints[best]
        for j in (NOSE, L_EYE, R_EYE):
            assert _inside(kp[j], face), (variant, j, kp[j])
    a = astro.keypoints[int(np.argmax(astro.box_scores))]
    assert a[L_SHOULDER, 1] > ASTRONAUT_CHIN_Y and a[R_SHOULDER, 1] > ASTRONAUT_CHIN_Y
    # In the picture the astronaut's left shoulder is on the viewer's right.
    assert a[L_SHOULDER, 0] > a[NOSE, 0] > a[R_SHOULDER, 0]
    c = cam.keypoints[int(np.argmax(cam.box_scores))]
    assert min(c[L_SHOULDER, 1], c[R_SHOULDER, 1]) > CAMERA_EYE_LINE_Y


@pytest.mark.parametrize("variant", MOVENETS)
def test_wrists_on_the_arms_of_the_astronaut(photos, variant):
    poses = load_estimator(variant)([photos["astronaut"]])[0]
    kp = poses.keypoints[int(np.argmax(poses.box_scores))]
    assert _inside(kp[L_WRIST], ASTRONAUT_HANDS) and _inside(kp[R_WRIST], ASTRONAUT_HANDS)


def test_coco_oks_floor(shared_data):
    """Mean OKS over the 12 labelled people of the COCO sample (benchmarks/bench_coco_oks.py
    prints it for every estimator; measured 0.78 for MultiPose at its default "auto" input size,
    0.70 at a fixed 256 px)."""
    ann = shared_data / "keypoints" / "coco" / "test_coco.json"
    people = evaluate_coco(load_estimator("multipose"), ann)
    assert len(people) == 12
    assert np.mean([p.oks for p in people]) > 0.6


def test_oks_is_one_for_a_perfect_detection_and_falls_with_error():
    gt = np.zeros((17, 3))
    gt[:, 0], gt[:, 1], gt[:, 2] = np.arange(17) * 10, 50, 2
    assert oks(gt, 1000.0, gt[:, :2]) == pytest.approx(1.0)
    assert oks(gt, 1000.0, gt[:, :2] + 5) < oks(gt, 1000.0, gt[:, :2] + 1) < 1.0
    gt[:, 2] = 0
    assert oks(gt, 1000.0, gt[:, :2]) == 0.0


def test_keypointrcnn_pre_and_post_processing_with_uninitialised_weights(photos):
    """Real weights need a download; the wrapper's conversions are what we own, so test them
    with random weights and a low threshold so that detections come out."""
    torch.manual_seed(0)
    est = KeypointRCNNEstimator(weights=None, min_person_score=0.0)
    est.model.roi_heads.detections_per_img = 5
    image = photos["astronaut"][:200, :300]
    out = est([image, image])
    assert len(out) == 2
    for poses in out:
        assert poses.keypoints.shape[1:] == (17, 2) and poses.keypoints.dtype == np.float32
        assert ((poses.scores >= 0) & (poses.scores <= 1)).all()
        if len(poses):
            assert (poses.boxes[:, 2] <= 300 + 1e-3).all() and (poses.boxes[:, 3] <= 200 + 1e-3).all()
    # The same frame twice gives the same result: no state leaks between images in a batch.
    np.testing.assert_allclose(out[0].keypoints, out[1].keypoints, atol=1e-4)


def test_unknown_estimator_is_a_clear_error():
    with pytest.raises(PosrecError, match="unknown estimator"):
        load_estimator("openpose")


@pytest.mark.parametrize("name", ["lightning", "multipose", "multipose-follow"])
def test_a_bare_frame_is_refused_with_a_clear_error(photos, name):
    """An (H, W, 3) array where a list of frames belongs used to be read as H images and fail
    with an IndexError deep in preprocessing."""
    est = load_estimator(name)
    with pytest.raises(PosrecError, match=r"list of frames.*\[frame\]"):
        est(photos["astronaut"])
    with pytest.raises(PosrecError, match=r"\(H, W, 3\) RGB arrays, got \(512, 512\)"):
        est([photos["astronaut"][..., 0]])
    assert len(est([photos["astronaut"]])) == 1


def _flipped_copy(src: Path, dst: Path) -> Path:
    """A byte-for-byte copy of ``src`` with one byte in the middle inverted."""
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def test_movenet_weights_with_one_flipped_byte_are_refused(tmp_path):
    src = WEIGHTS_DIR / "movenet_multipose.safetensors"
    good = tmp_path / "good.safetensors"
    good.write_bytes(src.read_bytes())
    assert load_movenet("multipose", path=good).multipose  # an intact copy loads anywhere
    bad = _flipped_copy(src, tmp_path / "bad.safetensors")
    with pytest.raises(PosrecError, match="corrupt or not the shipped movenet_multipose") as err:
        load_movenet("multipose", path=bad)
    assert "\n" not in str(err.value)
    # Another variant's intact file is not the multipose weights either.
    with pytest.raises(PosrecError, match="not the shipped movenet_multipose"):
        load_movenet("multipose", path=WEIGHTS_DIR / "movenet_lightning.safetensors")
    with pytest.raises(PosrecError, match="cannot be read"):
        load_movenet("multipose", path=tmp_path / "missing.safetensors")


def test_cli_refuses_a_corrupt_shipped_weight_file_with_exit_2(tmp_path, monkeypatch, capsys,
                                                               shared_data):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "NOTICE").write_bytes((WEIGHTS_DIR / "NOTICE").read_bytes())
    _flipped_copy(WEIGHTS_DIR / "movenet_lightning.safetensors",
                  weights / "movenet_lightning.safetensors")
    monkeypatch.setattr(posrec.paths, "WEIGHTS_DIR", weights)
    image = shared_data / "images" / "astronaut.png"
    rc = cli.main(["pose", str(image), "-o", str(tmp_path / "out"), "--model", "lightning"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "corrupt" in err[0], err
    assert not (tmp_path / "out" / "astronaut_pose.json").exists()


def test_shipped_weights_match_notice():
    sums = _notice_sha256()
    assert sorted(sums) == sorted(p.name for p in WEIGHTS_DIR.glob("*.safetensors"))
    for name in sums:
        verify_weights(WEIGHTS_DIR / name, name)  # raises on a mismatch


@pytest.mark.parametrize("error, offline", [
    (urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable")), True),
    (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")), True),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
    (TimeoutError("timed out"), True),
    (urllib.error.HTTPError("https://download.pytorch.org/x.pth", 404, "Not Found", None, None), False),
    (RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory"), False),
    (PermissionError(errno.EACCES, "Permission denied"), False),
])
def test_keypointrcnn_says_offline_only_for_network_failures(monkeypatch, tmp_path, error, offline):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache

    def fail(*a, **k):
        raise error

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    with pytest.raises(PosrecError) as err:
        KeypointRCNNEstimator()
    message = str(err.value)
    assert "\n" not in message and type(error).__name__ in message
    if offline:
        assert "not available offline" in message and "lightning" in message
    else:
        assert "not available offline" not in message and "could not be loaded" in message


def test_keypointrcnn_wrong_state_dict_is_not_called_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: {"foo": torch.zeros(1)})
    with pytest.raises(PosrecError, match=r"could not be loaded \(RuntimeError: Error"):
        KeypointRCNNEstimator()


def test_size_probe_without_a_size_reaching_the_recall_takes_the_one_finding_most():
    """Three people each found at one size only (boxes built by hand: the case came from a real
    composite clip in benchmarks/bench_label.py, where the probe raised StopIteration): no size
    finds 90 % of the pooled people, so the size that finds most (the smallest among ties) wins
    instead of an error."""
    from posrec.estimate.estimators import MultiPoseSize
    from posrec.estimate.types import FramePoses

    def people(*boxes):
        n = len(boxes)
        return FramePoses(np.zeros((n, 17, 2)), np.ones((n, 17)), np.array(boxes, float), np.ones(n))

    sizer = MultiPoseSize()
    a, b, c = (0, 0, 10, 20), (50, 0, 60, 20), (100, 0, 110, 20)
    found = [people(a), people(b, c), people(a)]
    assert sizer.choose([256, 384, 512], found) == 1 and sizer.size == 384
