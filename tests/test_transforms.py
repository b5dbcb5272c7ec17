"""Transforms on real clips: Penn Action (2D, annotated) and NW-UCLA (3D, Kinect v1)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from posrec.data import transforms as T
from posrec.data.dataset import SkeletonDataset
from posrec.data.normalize import PersonNormalize
from posrec.errors import PosrecError
from posrec.io.nwucla import read_nwucla_json
from posrec.io.penn import read_penn_mat
from posrec.skeleton import get_layout


@pytest.fixture(scope="module")
def penn_clip(shared_data: Path) -> dict:
    """Penn Action 0001 (baseball pitch, 151 frames, 480 x 360): keypoint (1, 151, 13, 2) pixels."""
    return read_penn_mat(shared_data / "skeleton/penn_action/labels/0001.mat")[0]


@pytest.fixture(scope="module")
def ucla_clip(shared_data: Path) -> dict:
    """NW-UCLA a01_s01_e00_v01: keypoint (1, T, 20, 3) metres."""
    return read_nwucla_json(shared_data / "skeleton/nw_ucla/all_sqe/a01_s01_e00_v01.json")


def _frozen(anno: dict) -> dict:
    """A copy whose arrays are read-only: a transform writing into its input fails loudly."""
    out = dict(anno)
    for k, v in anno.items():
        if isinstance(v, np.ndarray):
            out[k] = v.copy()
            out[k].flags.writeable = False
    return out


def _bone_lengths(kp: np.ndarray, layout: str) -> np.ndarray:
    bones = np.array(get_layout(layout).bones)
    return np.linalg.norm(kp[..., bones[:, 0], :] - kp[..., bones[:, 1], :], axis=-1)


def test_prenormalize2d(penn_clip):
    out = T.PreNormalize2D()(_frozen(penn_clip))
    h, w = penn_clip["img_shape"]
    kp, raw = out["keypoint"], penn_clip["keypoint"]
    np.testing.assert_allclose(kp[..., 0], (raw[..., 0] - w / 2) / (w / 2), atol=1e-6)
    np.testing.assert_allclose(kp[..., 1], (raw[..., 1] - h / 2) / (h / 2), atol=1e-6)
    assert np.abs(kp).max() <= 1.0 and out["normalized"] and kp.dtype == np.float32
    low = dict(penn_clip, keypoint_score=np.zeros_like(penn_clip["keypoint_score"]))
    assert not T.PreNormalize2D()(low)["keypoint"].any()  # score <= threshold -> missing


def test_prenormalize3d(ucla_clip):
    out = T.PreNormalize3D()(_frozen(ucla_clip))
    kp = out["keypoint"]
    assert kp.shape == ucla_clip["keypoint"].shape and out["total_frames"] == kp.shape[1]
    np.testing.assert_allclose(kp[0, 0, 1], 0, atol=1e-6)  # body centre (spine) at the origin
    shoulders = kp[0, 0, 4] - kp[0, 0, 8]  # right -> left shoulder along +x
    np.testing.assert_allclose(shoulders[1:], 0, atol=1e-5)
    assert shoulders[0] > 0
    # a rigid motion: every bone keeps its length in every frame
    np.testing.assert_allclose(_bone_lengths(kp, "nwucla20"),
                               _bone_lengths(ucla_clip["keypoint"], "nwucla20"), atol=1e-5)


def test_prenormalize3d_spine_to_z(ucla_clip):
    # with the shoulder step a no-op (shoulders already on x), the spine ends on +z
    kp = np.zeros((1, 2, 20, 3), np.float32)
    kp[:, :, 0] = [0, 0.2, -0.3]   # hip centre
    kp[:, :, 1] = [0, 0.7, 0.1]    # spine (centre)
    kp[:, :, 4] = [0.3, 0.9, 0.1]  # left shoulder
    kp[:, :, 8] = [-0.3, 0.9, 0.1]  # right shoulder
    kp[:, 1, 5] = [1, 1, 1]
    out = T.PreNormalize3D("nwucla20")({"keypoint": kp, "total_frames": 2})["keypoint"]
    spine = out[0, 0, 1] - out[0, 0, 0]
    np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 0, 1], atol=1e-6)
    assert not out[0, 0, 5].any()  # a missing joint stays missing


def test_prenormalize3d_drops_absent_frames_and_orders_people():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(2, 6, 25, 3)).astype(np.float32)
    kp[0, 3:] = 0  # person 0 only in 3 frames, person 1 in all 6
    out = T.PreNormalize3D()({"keypoint": kp, "total_frames": 6, "layout": "ntu25"})
    assert out["keypoint"].shape == (2, 6, 25, 3)
    assert np.any(out["keypoint"][0] != 0, axis=(1, 2)).all()  # the longer-present one is first
    kp[1, :2] = 0
    kp[0] = rng.normal(size=(6, 25, 3))
    kp[0, 4:] = 0
    out = T.PreNormalize3D()({"keypoint": kp, "total_frames": 6, "layout": "ntu25"})
    assert out["total_frames"] == 4 == out["keypoint"].shape[1]


@pytest.mark.parametrize("n", [7, 40, 75, 151, 500])
def test_uniform_sample(n):
    for test in (False, True):
        inds = T.sample_indices(n, 50, num_clips=3, test_mode=test)
        assert inds.shape == (150,) and inds.min() >= 0 and inds.max() < n
        if n >= 50:
            assert all(np.all(np.diff(c) > 0) for c in inds.reshape(3, 50))  # sorted, distinct
    a = T.sample_indices(n, 50, 10, test_mode=True)
    np.testing.assert_array_equal(a, T.sample_indices(n, 50, 10, test_mode=True))  # deterministic
    if n >= 100:
        assert not np.array_equal(a[:50], a[50:100])  # test clips differ from each other
        train = [T.sample_indices(n, 50, rng=np.random.default_rng(s)) for s in range(2)]
        assert not np.array_equal(*train)


def test_uniform_sample_short_loops_and_p_interval():
    inds = T.sample_indices(7, 20, test_mode=True)
    assert set(inds) == set(range(7))  # every frame, looped
    inds = T.sample_indices(1000, 10, p_interval=(0.5, 0.5), rng=np.random.default_rng(1))
    assert inds.max() - inds.min() < 500


def test_uniform_sample_transform(penn_clip):
    out = T.UniformSample(32, num_clips=2, test_mode=True)(_frozen(penn_clip))
    assert out["keypoint"].shape == (1, 64, 13, 2) and out["keypoint_score"].shape == (1, 64, 13)
    np.testing.assert_array_equal(out["keypoint"], penn_clip["keypoint"][:, out["frame_inds"]])
    x = T.ToTensor()(out)["keypoint"]
    assert x.shape == (2, 1, 32, 13, 3) and x.dtype == torch.float32


@pytest.mark.parametrize("normalise", [False, True])
def test_flip_twice_is_identity_2d(penn_clip, normalise):
    clip = T.PreNormalize2D()(penn_clip) if normalise else penn_clip
    once = T.RandomFlip(p=1.0)(_frozen(clip))
    twice = T.RandomFlip(p=1.0)(_frozen(once))
    np.testing.assert_allclose(twice["keypoint"], clip["keypoint"], atol=1e-4)
    np.testing.assert_array_equal(twice["keypoint_score"], clip["keypoint_score"])
    # the left wrist (5) after the flip is the mirrored right wrist (6)
    w = penn_clip["img_shape"][1]
    mirror = -clip["keypoint"][..., 6, 0] if normalise else w - clip["keypoint"][..., 6, 0]
    np.testing.assert_allclose(once["keypoint"][..., 5, 0], mirror, atol=1e-4)
    np.testing.assert_array_equal(once["keypoint_score"][..., 5], clip["keypoint_score"][..., 6])
    assert T.RandomFlip(p=0.0)(clip) is clip


def test_flip_3d(ucla_clip):
    clip = T.PreNormalize3D()(ucla_clip)
    once = T.flip(clip)
    np.testing.assert_allclose(T.flip(once)["keypoint"], clip["keypoint"], atol=1e-6)
    np.testing.assert_allclose(once["keypoint"][..., 4, 0], -clip["keypoint"][..., 8, 0], atol=1e-6)


def test_minmax_normalize_spans_each_axis(ucla_clip):
    clip = T.PreNormalize3D()(ucla_clip)
    kp = clip["keypoint"].copy()
    kp[0, 3, 7] = 0  # a missing joint
    out = T.MinMaxNormalize()({**clip, "keypoint": kp})["keypoint"]
    present = np.any(kp != 0, -1)
    assert not out[~present].any()
    np.testing.assert_allclose(out[present].min(0), -1, atol=1e-6)
    np.testing.assert_allclose(out[present].max(0), 1, atol=1e-6)
    # an affine map per axis: scaling and shifting the input changes nothing
    moved = np.where(present[..., None], kp * np.float32([2, 0.5, 3]) + 1, 0)
    np.testing.assert_allclose(T.MinMaxNormalize()({**clip, "keypoint": moved})["keypoint"], out,
                               atol=1e-5)


def test_add_flipped_appends_mirrored_clips(penn_clip):
    clip = T.UniformSample(clip_len=8, num_clips=2, test_mode=True)(T.PreNormalize2D()(penn_clip))
    both = T.AddFlipped()(clip)
    assert both["num_clips"] == 4 and both["keypoint"].shape[1] == 32
    np.testing.assert_array_equal(both["keypoint"][:, :16], clip["keypoint"])
    np.testing.assert_allclose(both["keypoint"][:, 16:], T.flip(clip)["keypoint"])
    np.testing.assert_array_equal(both["keypoint_score"][:, 16:], T.flip(clip)["keypoint_score"])
    x = T.Compose([T.GenSkeFeat(feats=("jm",)), T.ToTensor()])(both)["keypoint"]
    assert x.shape == (4, 1, 8, 13, 3)
    assert not x[:, :, -1, :, :2].any()  # motion stays within each clip, mirrored ones too


def test_streams(penn_clip):
    clip = T.PreNormalize2D()(penn_clip)
    out = T.GenSkeFeat("penn13", feats=("j", "b", "jm", "bm"))(_frozen(clip))
    kp = out["keypoint"]
    assert kp.shape == (1, 151, 13, 12) and "keypoint_score" not in out
    j, b, jm, bm = np.split(kp, 4, axis=-1)
    np.testing.assert_array_equal(j[..., 2], clip["keypoint_score"])  # score as a channel
    centre = get_layout("penn13").center
    assert not b[..., centre, :2].any()  # the centre joint's bone is zero
    parents = get_layout("penn13").parents
    np.testing.assert_allclose(b[..., 9, :2], j[..., 9, :2] - j[..., parents[9], :2])
    np.testing.assert_allclose(jm[:, :-1, :, :2], np.diff(j[..., :2], axis=1), atol=1e-6)
    assert not jm[:, -1].any() and not bm[:, -1].any()
    np.testing.assert_allclose(bm[:, :-1, :, :2], np.diff(b[..., :2], axis=1), atol=1e-6)
    only_b = T.Streams("penn13", feats=("b",))(clip)["keypoint"]
    np.testing.assert_array_equal(only_b, b)
    with pytest.raises(PosrecError, match="unknown input stream"):
        T.GenSkeFeat("penn13", feats=("x",))


def test_motion_stays_within_clips(penn_clip):
    clip = T.UniformSample(10, num_clips=3, test_mode=True)(T.PreNormalize2D()(penn_clip))
    jm = T.GenSkeFeat("penn13", feats=("jm",))(clip)["keypoint"]
    assert not jm[:, [9, 19, 29]].any()  # last frame of each clip: no difference across clips


def test_masked_motion_ignores_missing_joints(penn_clip):
    """A dropped joint is no motion, not a jump to the (0, 0) marker and back; bones likewise."""
    clip = PersonNormalize()(T.UniformSample(20, test_mode=True)(penn_clip))
    kp = clip["keypoint"].copy()
    kp[0, 5, 9] = 0  # penn13 joint 9 (a knee) lost in frame 5
    holed = {**clip, "keypoint": kp}
    raw = T.GenSkeFeat("penn13", feats=("jm", "bm"))(holed)["keypoint"]
    out = T.GenSkeFeat("penn13", feats=("jm", "bm"), mask_motion=True)(_frozen(holed))["keypoint"]
    jm, bm = out[..., :3], out[..., 3:]
    # the raw stream jumps by the joint's whole offset from the centre, into frame 5 and out
    assert np.abs(raw[0, 4, 9, :2]).max() > 0.1 and np.abs(raw[0, 5, 9, :2]).max() > 0.1
    assert not jm[0, 4:6, 9].any()  # frames 4->5 and 5->6 touch the missing joint
    child = [v for v, p in enumerate(get_layout("penn13").parents) if p == 9]
    assert child and not bm[0, 4:6, [9] + child].any()  # bones to and from it
    np.testing.assert_array_equal(jm[0, 6:, 9], raw[0, 6:, 9, :3])  # elsewhere unchanged
    np.testing.assert_array_equal(jm[0, :, :9], raw[0, :, :9, :3])
    assert not jm[0, -1].any()


def test_streams_3d(ucla_clip):
    out = T.GenSkeFeat(feats=("j", "b"))(T.PreNormalize3D()(ucla_clip))["keypoint"]  # layout key
    assert out.shape[-1] == 6 and not out[..., get_layout("nwucla20").center, 3:].any()


def test_rotation_preserves_bone_lengths(ucla_clip, penn_clip):
    clip = T.PreNormalize3D()(ucla_clip)
    rot = T.RandomRotate(0.5, rng=np.random.default_rng(0))(_frozen(clip))["keypoint"]
    assert not np.allclose(rot, clip["keypoint"])
    np.testing.assert_allclose(_bone_lengths(rot, "nwucla20"), _bone_lengths(clip["keypoint"], "nwucla20"),
                               atol=1e-5)
    flat = T.PreNormalize2D()(penn_clip)
    rot2 = T.RandomRotate(0.5, rng=np.random.default_rng(1))(flat)["keypoint"]
    np.testing.assert_allclose(_bone_lengths(rot2, "penn13"), _bone_lengths(flat["keypoint"], "penn13"),
                               atol=1e-5)


def test_scale_shift_keep_missing_joints():
    kp = np.ones((2, 4, 13, 2), np.float32)
    kp[1] = 0
    clip = {"keypoint": kp, "keypoint_score": np.ones(kp.shape[:3], np.float32)}
    for t in (T.RandomScale(0.2), T.RandomShift(0.2), T.RandomRotate(0.3), T.EstimatorNoise(0.05, 0.2)):
        out = t(_frozen(clip))["keypoint"]
        assert out.shape == kp.shape and not out[1].any(), t
    s = T.RandomScale(0.2, rng=np.random.default_rng(0))(clip)["keypoint"][0]
    assert np.all((s >= 0.8) & (s <= 1.2)) and np.ptp(s[..., 0]) == 0


def test_estimator_noise(penn_clip):
    clip = T.PreNormalize2D()(penn_clip)
    out = T.EstimatorNoise(0.02, drop_prob=0.1, score_range=(0.5, 1.0), rng=np.random.default_rng(0))(
        _frozen(clip))
    kp, sc = out["keypoint"], out["keypoint_score"]
    was = np.any(clip["keypoint"] != 0, -1)
    dropped = was & ~np.any(kp != 0, -1)
    assert 0.07 < dropped.sum() / was.sum() < 0.13 and not sc[dropped].any()
    kept = was & ~dropped
    ratio = sc[kept] / clip["keypoint_score"][kept]
    assert ratio.min() >= 0.5 and ratio.max() <= 1.0
    err = np.linalg.norm(kp - clip["keypoint"], axis=-1)[kept]
    assert 0 < np.median(err) < 0.1  # a few percent of a body that spans about one unit


def test_estimator_noise_per_clip_spreads_the_jitter(penn_clip):
    """per_clip: each call's std is uniform in [0, sigma], so some clips come out nearly clean."""
    clip = PersonNormalize()(T.UniformSample(40, test_mode=True)(penn_clip))
    rng = np.random.default_rng(0)

    def median_error(per_clip):
        out = T.EstimatorNoise(0.03, drop_prob=0, per_clip=per_clip, rng=rng)(_frozen(clip))
        return np.median(np.linalg.norm(out["keypoint"] - clip["keypoint"], axis=-1))

    fixed = np.array([median_error(False) for _ in range(30)])
    spread = np.array([median_error(True) for _ in range(30)])
    assert fixed.min() > 0.5 * fixed.max()  # one std: every clip about as noisy
    assert spread.min() < 0.2 * fixed.min() and spread.max() < 1.1 * fixed.max()
    assert 0.3 < spread.mean() / fixed.mean() < 0.7  # uniform in [0, sigma]: half on average


def test_pad_persons(penn_clip):
    out = T.PadPersons(2)(penn_clip)
    assert out["keypoint"].shape[0] == 2 == out["keypoint_score"].shape[0] and not out["keypoint"][1].any()
    loop = T.PadPersons(3, mode="loop")(penn_clip)["keypoint"]
    np.testing.assert_array_equal(loop[2], penn_clip["keypoint"][0])
    assert T.PadPersons(1)(out)["keypoint"].shape[0] == 1


@pytest.mark.parametrize("which", ["penn", "ucla"])
def test_build_transform_batches(which, penn_clip, ucla_clip):
    from posrec.config import AugmentConfig
    from posrec.data.pipeline import InputSpec, build_transform

    clip = penn_clip if which == "penn" else ucla_clip
    dim, layout = (2, "penn13") if which == "penn" else (3, "nwucla20")
    data = {"split": {"train": [clip["frame_dir"]]}, "annotations": [clip], "classes": list("abcdefghijklmno")}
    spec = InputSpec(layout, feats=("j", "b"), clip_len=24, dim=dim,
                     normalize="image" if dim == 2 else "body3d")
    aug = AugmentConfig(rotate=0.1, scale=0.1, shift=0.05, noise=0.01, drop=0.05, flip=0.5)
    ds = SkeletonDataset(data, "train", build_transform(spec, True, 1, aug))
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=1)))
    assert x.shape == (1, 1, 2, 24, get_layout(layout).num_joints, 6) and x.dtype == torch.float32
    test = build_transform(dataclasses.replace(spec, feats=("j",)), False, 4)
    a, b = SkeletonDataset(data, "train", test)[0][0], SkeletonDataset(data, "train", test)[0][0]
    assert a.shape == (4, 2, 24, get_layout(layout).num_joints, 3) and torch.equal(a, b)


def test_input_spec_round_trip_and_differences():
    from posrec.data.pipeline import InputSpec

    spec = InputSpec("penn13", feats=("j", "b"), clip_len=32, normalize="person", sampling="window",
                     fps=20.0, score="presence")
    assert InputSpec.from_dict(spec.to_dict()) == spec
    assert spec.window_seconds == pytest.approx(1.6)
    other = dataclasses.replace(spec, feats=("b",))
    assert spec.differences(other) == ["feats ('j', 'b') != ('b',)"]
    with pytest.raises(PosrecError, match="unknown input pipeline keys colour"):
        InputSpec.from_dict({**spec.to_dict(), "colour": 1})


def test_window_indices_follow_the_frame_rates():
    from posrec.data.sampling import window_indices

    # 60 fps source, 20 fps model: every third frame, a centred window at test time
    idx = window_indices(300, 3.0, 10, test_mode=True)
    assert np.all(np.diff(idx) == 3) and idx[0] == (300 - 1 - 27) // 2  # 136: centred
    # evenly spread windows span the sequence from its first to its last frame
    many = window_indices(300, 3.0, 10, num_clips=3, test_mode=True).reshape(3, 10)
    assert many[0, 0] == 0 and many[-1, -1] == 299
    # a short sequence (12 source frames at step 2 -> 6 frames) is padded with its end frames
    short = window_indices(12, 2.0, 10, test_mode=True)
    np.testing.assert_array_equal(short, [0, 0, 0, 2, 4, 6, 8, 10, 10, 10])
    # or played again from its start ("loop"): every window frame is a moving one
    looped = window_indices(12, 2.0, 10, test_mode=True, pad="loop")
    np.testing.assert_array_equal(looped, [0, 2, 4, 6, 8, 10, 0, 2, 4, 6])
    # training loops from a random frame of the clip, in order
    rng = np.random.default_rng(0)
    for _ in range(10):
        idx = window_indices(12, 2.0, 10, pad="loop", rng=rng)
        assert len(idx) == 10 and idx.max() <= 10
        # each step moves on by one model frame or wraps back to the clip's first frame
        assert all(q - p == 2 or q == 0 for p, q in zip(idx[:-1], idx[1:]))
    with pytest.raises(PosrecError, match="pad must be"):
        window_indices(12, 2.0, 10, pad="mirror")
    # "absent": edge's frames, and which of them are the sequence's own
    idx, real = window_indices(12, 2.0, 10, test_mode=True, pad="absent", return_real=True)
    np.testing.assert_array_equal(idx, short)
    np.testing.assert_array_equal(real, [0, 0, 1, 1, 1, 1, 1, 1, 0, 0])
    # training speeds stay within the range: steps between 2 / 1.5 and 2 * 1.5
    rng = np.random.default_rng(0)
    for _ in range(20):
        d = np.diff(window_indices(1000, 2.0, 16, speed=(1 / 1.5, 1.5), rng=rng))
        assert d.min() >= 1 and d.max() <= 3


def test_window_padding_marked_absent_reaches_the_model_as_missing_joints():
    """pad_short "absent": a clip shorter than a window is centred in it and the padding is
    missing joints (presence 0), not copies of the end frames a model reads as a still body."""
    from posrec.data.pipeline import InputSpec, build_transform

    rng = np.random.default_rng(0)
    clip = {"keypoint": rng.uniform(10, 100, (1, 12, 13, 2)).astype(np.float32),
            "keypoint_score": np.ones((1, 12, 13), np.float32), "total_frames": 12, "fps": 40.0}
    spec = InputSpec(layout="penn13", feats=("j",), clip_len=10, num_person=1, normalize="person",
                     sampling="window", fps=20, score="presence", pad_short="absent")
    x = build_transform(spec)(dict(clip))["keypoint"][0, 0].numpy()  # (T, V, 3)
    presence = x[..., 2].mean(1)
    np.testing.assert_array_equal(presence, [0, 0, 1, 1, 1, 1, 1, 1, 0, 0])
    assert np.all(x[presence == 0] == 0)
    edge = build_transform(dataclasses.replace(spec, pad_short="edge"))(dict(clip))["keypoint"]
    assert np.all(edge[0, 0, ..., 2].numpy() == 1)  # edge padding: every frame present


def test_person_normalize_ignores_frame_size_and_position(penn_clip):
    """The same body, half the size and elsewhere in the frame, gives the same input."""
    from posrec.data.normalize import PersonNormalize

    clip = T.UniformSample(32, 1, test_mode=True)(penn_clip)
    a = PersonNormalize()(clip)["keypoint"]
    moved = {**clip, "keypoint": np.where(clip["keypoint"] != 0, clip["keypoint"] * 0.5 + 40, 0)}
    b = PersonNormalize()(moved)["keypoint"]
    np.testing.assert_allclose(a, b, atol=1e-5)
    present = a[0][(a[0] != 0).any(-1)]
    assert abs(present.mean(0)).max() < 1e-5  # centred
    side = (a[0].max(1) - a[0].min(1)).max(-1)  # per frame: longer side of the body box
    assert np.median(side) == pytest.approx(1.0, abs=1e-5)  # scaled to unit body size


def test_person_normalize_can_take_out_horizontal_drift(penn_clip):
    """remove_drift: a body carried across the frame at constant speed (a walk past a fixed
    camera) gives the input of the same body in place; a vertical drift (sinking, rising) stays,
    and without the option the drift stays too."""
    from posrec.data.normalize import PersonNormalize

    clip = T.UniformSample(32, 1, test_mode=True)(penn_clip)
    kp = clip["keypoint"]
    present = (kp != 0).any(-1, keepdims=True)
    frames = np.arange(kp.shape[1], dtype=np.float32)[None, :, None, None]

    def shifted(dx, dy):  # pixels per frame
        return {**clip, "keypoint": np.where(present, kp + frames * np.float32([dx, dy]), 0)}

    still = PersonNormalize(remove_drift=True)(clip)["keypoint"]
    across = PersonNormalize(remove_drift=True)(shifted(7.0, 0.0))["keypoint"]
    np.testing.assert_allclose(across, still, atol=1e-4)
    kept = PersonNormalize()(shifted(7.0, 0.0))["keypoint"]
    assert not np.allclose(kept, PersonNormalize()(clip)["keypoint"], atol=1e-2)
    sinking = PersonNormalize(remove_drift=True)(shifted(0.0, 7.0))["keypoint"]
    assert not np.allclose(sinking, still, atol=1e-2)


def test_minmax_normalize_is_per_clip(ucla_clip):
    """Two clips scaled together equal each one scaled alone (it used to span all clips)."""
    clip = T.UniformSample(20, 2, test_mode=True)(ucla_clip)
    both = T.MinMaxNormalize()(clip)["keypoint"]
    for i in range(2):
        one = {**clip, "keypoint": clip["keypoint"][:, 20 * i:20 * (i + 1)], "num_clips": 1}
        np.testing.assert_allclose(both[:, 20 * i:20 * (i + 1)], T.MinMaxNormalize()(one)["keypoint"],
                                   atol=1e-6)


def test_estimator_noise_augmentations(penn_clip):
    """Truncation drops the lower body; L/R swaps trade limb pairs; frame drops blank frames;
    presence replaces scores by 0/1. On a real Penn clip, with fixed generators."""
    from posrec.data.augment import FrameDrop, RandomSwapLR, RandomTruncate
    from posrec.data.streams import PresenceScore

    lay = get_layout("penn13")
    ankles = [lay.index("left_ankle"), lay.index("right_ankle")]
    rng = np.random.default_rng(1)
    cut = RandomTruncate("penn13", p=1.0, rng=rng)(_frozen(penn_clip))
    assert (cut["keypoint"][:, :, ankles] == 0).all() and (cut["keypoint_score"][:, :, ankles] == 0).all()
    assert (cut["keypoint"][:, :, lay.index("head")] != 0).any()
    swapped = RandomSwapLR("penn13", p=0.2, rng=np.random.default_rng(2))(_frozen(penn_clip))["keypoint"]
    changed = (swapped != penn_clip["keypoint"]).any(-1)[0]  # (T, V)
    assert 0 < changed.any(1).mean() < 1
    lw, rw = lay.index("left_wrist"), lay.index("right_wrist")
    f = np.flatnonzero(changed[:, lw])[0]
    np.testing.assert_array_equal(swapped[0, f, lw], penn_clip["keypoint"][0, f, rw])
    dropped = FrameDrop(p=0.3, rng=np.random.default_rng(3))(_frozen(penn_clip))
    gone = (dropped["keypoint"][0] == 0).all((-1, -2))
    assert 0.15 < gone.mean() < 0.45 and (dropped["keypoint_score"][0][gone] == 0).all()
    pres = PresenceScore()(cut)["keypoint_score"]
    assert set(np.unique(pres)) <= {0.0, 1.0} and (pres[:, :, ankles] == 0).all()
