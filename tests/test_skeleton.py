"""Layouts, graph adjacency and joint maps (posrec.skeleton)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posrec.errors import PosrecError
from posrec.skeleton import LAYOUTS, Layout, convert_layout, get_layout

NAMES = ["coco17", "penn13", "ntu25", "nwucla20", "openpose18"]

# penn13, hand-written: joint order head, L/R shoulder, L/R elbow, L/R wrist, L/R hip, L/R knee,
# L/R ankle; bones (child, parent) toward the head.
PENN13_BONES = {
    (1, 0), (2, 0),  # shoulders -> head
    (3, 1), (5, 3),  # left arm
    (4, 2), (6, 4),  # right arm
    (7, 1), (9, 7), (11, 9),  # left hip -> left shoulder, knee, ankle
    (8, 2), (10, 8), (12, 10),  # right side
}


def test_registry():
    assert sorted(LAYOUTS) == sorted(NAMES)
    assert [get_layout(n).num_joints for n in NAMES] == [17, 13, 25, 20, 18]
    assert get_layout(LAYOUTS["coco17"]) is LAYOUTS["coco17"]
    with pytest.raises(PosrecError, match="unknown layout 'coco18'.*coco17"):
        get_layout("coco18")
    with pytest.raises(PosrecError, match="no joint"):
        get_layout("penn13").index("nose")


@pytest.mark.parametrize("name", NAMES)
def test_bones_form_a_tree_toward_the_centre(name):
    lay = get_layout(name)
    v = lay.num_joints
    assert len(set(lay.joints)) == v
    assert len(lay.bones) == v - 1 and len(set(lay.bones)) == v - 1
    hop = lay.hop_distance()
    assert np.isfinite(hop).all(), "graph not connected"
    assert (hop == hop.T).all()
    for child, parent in lay.bones:  # each bone is one step toward the centre
        assert hop[child, lay.center] == hop[parent, lay.center] + 1
    assert sorted(c for c, _ in lay.bones) == sorted(set(range(v)) - {lay.center})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["spatial", "stgcn_spatial"])
def test_adjacency_structure(name, mode):
    lay = get_layout(name)
    a = lay.adjacency(mode)
    v = lay.num_joints
    assert a.shape == (3, v, v) and a.dtype == np.float32
    assert (a >= 0).all()
    support = (a > 0).sum(0)
    # self + in + out together cover exactly the joint, its neighbours, once each: symmetric
    expected = np.eye(v, dtype=int)
    for c, p in lay.bones:
        expected[c, p] = expected[p, c] = 1
    np.testing.assert_array_equal(support, expected)
    if mode == "spatial":
        np.testing.assert_array_equal(a[0], np.eye(v))
        np.testing.assert_array_equal(a[1] > 0, (a[2] > 0).T)  # inward = outward reversed
        for k in (1, 2):
            col = a[k].sum(0)
            np.testing.assert_allclose(col[col > 0], 1, rtol=1e-6)
    else:  # one normalisation over the whole neighbourhood: columns sum to 1 over subsets
        np.testing.assert_allclose(a.sum((0, 1)), 1, rtol=1e-6)


def test_penn13_adjacency_by_hand():
    lay = get_layout("penn13")
    assert set(lay.bones) == PENN13_BONES and lay.center == 0
    a = lay.adjacency("spatial")
    inward = np.zeros((13, 13))
    outward = np.zeros((13, 13))
    for c, p in PENN13_BONES:
        inward[p, c] = 1.0  # every joint has one parent
    # outward: a parent's column is shared by its children
    for c, p in PENN13_BONES:
        outward[c, p] = {0: 0.5, 1: 0.5, 2: 0.5}.get(p, 1.0)  # head, shoulders: two children
    np.testing.assert_array_equal(a[1], inward)
    np.testing.assert_array_equal(a[2], outward)
    # the original ST-GCN partition, a few entries by hand
    s = lay.adjacency("stgcn_spatial")
    assert s[0, 0, 0] == pytest.approx(1 / 3)  # head: itself + 2 shoulders
    assert s[1, 1, 0] == s[1, 2, 0] == pytest.approx(1 / 3)  # shoulders are farther from the centre
    assert s[0, 1, 1] == pytest.approx(1 / 4)  # L shoulder: itself, head, elbow, hip
    assert s[2, 0, 1] == pytest.approx(1 / 4)  # the head is closer to the centre
    assert s[1, 3, 1] == s[1, 7, 1] == pytest.approx(1 / 4)
    assert s[2, 1, 3] == pytest.approx(1 / 3)  # L elbow <- L shoulder (closer)
    assert s[1, 5, 3] == pytest.approx(1 / 3)  # L elbow <- L wrist
    assert s[1, 9, 7] == s[2, 1, 7] == pytest.approx(1 / 3)  # L hip: shoulder, knee
    # joints two or more bones from the centre count as equally (infinitely) far, as in ST-GCN:
    assert s[1, 3, 5] == pytest.approx(1 / 2)


def test_coco17_and_ntu25_adjacency_entries():
    a = get_layout("coco17").adjacency()
    for c in (1, 2, 5, 6):  # the nose has four children
        assert a[2, c, 0] == pytest.approx(0.25)
        assert a[1, 0, c] == 1
    assert a[1, 5, 11] == 1 and a[2, 11, 5] == pytest.approx(0.5)  # L hip hangs on L shoulder
    n = get_layout("ntu25").adjacency()
    assert n[2, 21, 7] == n[2, 22, 7] == pytest.approx(0.5)  # the hand: hand tip and thumb
    assert n[1, 7, 21] == n[1, 7, 22] == 1 and n[2, 6, 7] == 0 and n[2, 7, 6] == 1
    assert n[2, 1, 20] == pytest.approx(0.25)  # spine_shoulder: spine_mid, neck, 2 shoulders


@pytest.mark.parametrize("name", NAMES)
def test_left_right_pairs_swap(name):
    lay = get_layout(name)
    idx = lay.flip_index
    np.testing.assert_array_equal(idx[idx], np.arange(lay.num_joints))  # an involution
    for i, j in enumerate(idx):
        a, b = lay.joints[i], lay.joints[j]
        if a.startswith("left_"):
            assert b == "right_" + a[5:]
        elif a.startswith("right_"):
            assert b == "left_" + a[6:]
        else:
            assert i == j
    flipped = {(int(idx[c]), int(idx[p])) for c, p in lay.bones}  # the graph is mirror-symmetric
    assert flipped == set(lay.bones)
    x = np.arange(lay.num_joints * 2, dtype=np.float32).reshape(1, 1, -1, 2)
    np.testing.assert_array_equal(x[..., idx, :][..., idx, :], x)


@pytest.mark.parametrize("name", NAMES)
def test_bone_pairs(name):
    lay = get_layout(name)
    assert [j for j, _ in lay.bone_pairs] == sorted(j for j, _ in lay.bone_pairs)
    par = lay.parents
    roots = [j for j in range(lay.num_joints) if par[j] == j]
    assert len(roots) == 1
    for j in range(lay.num_joints):  # following parents reaches the root without cycles
        seen = set()
        while par[j] != j:
            assert j not in seen
            seen.add(j)
            j = par[j]
    x = np.random.RandomState(0).rand(2, 3, lay.num_joints, 3)
    bone = np.zeros_like(x)
    for v, p in lay.bone_pairs:
        bone[..., v, :] = x[..., v, :] - x[..., p, :]
    np.testing.assert_array_equal(bone, x - x[..., par, :])


def test_bone_pairs_match_pyskl_and_ctrgcn():
    # PYSKL's JointToBone pairs (for its model zoo's bone streams) and CTR-GCN's NW-UCLA bones.
    assert get_layout("coco17").bone_pairs[11] == (11, 0)
    assert get_layout("ntu25").bone_pairs[21] == (21, 22) and get_layout("ntu25").parents[20] == 20
    ucla_1based = [(1, 2), (2, 3), (3, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9),
                   (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17),
                   (19, 18), (20, 19)]
    assert get_layout("nwucla20").bone_pairs == tuple((a - 1, b - 1) for a, b in ucla_1based)
    assert set(get_layout("penn13").bone_pairs) == PENN13_BONES | {(0, 0)}


def test_layout_validation():
    with pytest.raises(AssertionError):
        Layout("bad", ("a", "b"), bones=((1, 5),), center=0, left_right=())
    with pytest.raises(PosrecError, match="adjacency mode"):
        get_layout("coco17").adjacency("distance")


# --- joint maps -----------------------------------------------------------------------------


def test_coco17_to_penn13_known_example():
    kp = np.zeros((1, 2, 17, 2), np.float32)
    kp[..., :, 0] = np.arange(17)  # x = coco index
    kp[..., :, 1] = 100 + np.arange(17)
    sc = np.ones((1, 2, 17), np.float32)
    sc[0, 0, :5] = [0.8, 0.2, 0.0, 0.0, 0.0]  # frame 0: nose and left eye seen
    sc[0, 1, :5] = 0.0  # frame 1: no face point seen
    out, osc = convert_layout(kp, sc, "coco17", "penn13")
    assert out.shape == (1, 2, 13, 2) and osc.shape == (1, 2, 13) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [0.2, 100.2], rtol=1e-6)  # (0.8*0 + 0.2*1) / 1
    assert osc[0, 0, 0] == pytest.approx(0.8)
    np.testing.assert_allclose(out[0, 1, 0], [2.0, 102.0])  # plain mean of the 5 points
    assert osc[0, 1, 0] == 0
    np.testing.assert_array_equal(out[..., 1:, 0], np.broadcast_to(np.arange(5, 17), (1, 2, 12)))
    np.testing.assert_array_equal(osc[..., 1:], 1)
    # names line up
    coco, penn = get_layout("coco17"), get_layout("penn13")
    for j, name in enumerate(penn.joints[1:], 1):
        assert out[0, 0, j, 0] == coco.index(name)


def test_coco17_to_penn13_on_real_coco_ground_truth(shared_data):
    ann = json.loads((shared_data / "keypoints/coco/test_coco.json").read_text())["annotations"]
    kp = np.array([a["keypoints"] for a in ann], np.float32).reshape(-1, 17, 3)
    xy, vis = kp[..., :2], (kp[..., 2] > 0).astype(np.float32)
    out, sc = convert_layout(xy, vis, "coco17", "penn13")
    for p in range(len(kp)):
        face = vis[p, :5] > 0
        if face.any():
            np.testing.assert_allclose(out[p, 0], xy[p, :5][face].mean(0), rtol=1e-5)
            assert sc[p, 0] == 1
            # the head is above the shoulders it hangs on (image y grows downward)
            if vis[p, 5] and vis[p, 6]:
                assert out[p, 0, 1] < xy[p, 5:7, 1].max()
        else:
            assert sc[p, 0] == 0


def test_ntu25_and_nwucla20_to_penn13():
    kp = np.random.RandomState(0).rand(2, 4, 25, 3).astype(np.float32)
    out, sc = convert_layout(kp, None, "ntu25", "penn13")
    assert sc is None
    ntu = get_layout("ntu25")
    np.testing.assert_array_equal(out, kp[..., [ntu.index(n) for n in get_layout("penn13").joints], :])
    np.testing.assert_array_equal(out[..., 0, :], kp[..., 3, :])  # head
    ucla, _ = convert_layout(kp, None, "ntu25", "nwucla20")  # Kinect v2 -> v1
    np.testing.assert_array_equal(ucla[..., :3, :], kp[..., [0, 1, 20], :])
    np.testing.assert_array_equal(ucla[..., 3:, :], kp[..., 3:20, :])
    via, _ = convert_layout(ucla, None, "nwucla20", "penn13")
    np.testing.assert_array_equal(via, out)


def test_nwucla20_order_on_real_data(shared_data):
    files = sorted((shared_data / "skeleton/nw_ucla/all_sqe").glob("a0*_s0*_v01.json"))[:20]
    assert files
    lay = get_layout("nwucla20")
    for f in files:
        s = np.array(json.loads(f.read_text())["skeletons"], np.float32)  # (T, 20, 3), y up
        y = s[..., 1].mean(0)
        j = lay.index
        assert y[j("head")] > y[j("shoulder_center")] > y[j("spine")] > y[j("hip_center")]
        assert y[j("left_hip")] > y[j("left_knee")] > y[j("left_ankle")]
        assert y[j("right_shoulder")] > y[j("right_hip")] > y[j("right_knee")]
        # bones are short: every joint is near its parent (metres)
        d = np.linalg.norm(s - s[:, lay.parents], axis=-1).mean(0)
        assert d.max() < 0.6
    kp = s[None]
    out, _ = convert_layout(kp, None, "nwucla20", "penn13")
    np.testing.assert_array_equal(out[0, :, 0], s[:, 3])


def test_penn13_order_on_real_data(shared_data):
    scipy_io = pytest.importorskip("scipy.io")
    lay = get_layout("penn13")
    for i in (1, 50, 400):
        m = scipy_io.loadmat(shared_data / f"skeleton/penn_action/labels/{i:04d}.mat")
        y, vis = m["y"], m["visibility"]  # (T, 13) each, image y grows downward
        ym = np.array([y[:, k][vis[:, k] > 0].mean() if vis[:, k].any() else np.nan for k in range(13)])
        if str(m["action"][0]) in ("pushup", "situp", "bench_press"):
            continue  # lying down: no up/down order
        assert ym[lay.index("head")] < ym[lay.index("left_hip")] < ym[lay.index("left_ankle")]
        assert ym[lay.index("right_shoulder")] < ym[lay.index("right_knee")]


def test_openpose18_to_coco17_and_penn13():
    op = get_layout("openpose18")
    kp = np.zeros((3, 18, 2), np.float32)
    kp[..., 0] = np.arange(18)
    sc = np.linspace(0.1, 0.9, 18, dtype=np.float32)[None].repeat(3, 0)
    out, osc = convert_layout(kp, sc, "openpose18", "coco17")
    coco = get_layout("coco17")
    for j, name in enumerate(coco.joints):
        assert out[0, j, 0] == op.index(name)
        assert osc[0, j] == sc[0, op.index(name)]
    assert 1 not in out[..., 0]  # the neck is dropped
    penn, psc = convert_layout(kp, sc, "openpose18", "penn13")  # via coco17
    assert penn.shape == (3, 13, 2)
    face = [op.index(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    w = sc[0, face]
    assert penn[0, 0, 0] == pytest.approx(float((w * np.array(face)).sum() / w.sum()), rel=1e-5)
    assert psc[0, 0] == pytest.approx(w.max())


def test_convert_layout_errors():
    kp = np.zeros((1, 1, 17, 2), np.float32)
    with pytest.raises(PosrecError, match="no joint map from penn13 to coco17"):
        convert_layout(np.zeros((1, 1, 13, 2)), None, "penn13", "coco17")
    with pytest.raises(PosrecError, match="does not have 25 ntu25 joints"):
        convert_layout(kp, None, "ntu25", "penn13")
    with pytest.raises(PosrecError, match="keypoint_score shape"):
        convert_layout(kp, np.ones((1, 1, 13)), "coco17", "penn13")
    with pytest.raises(PosrecError, match="unknown layout"):
        convert_layout(kp, None, "coco17", "h36m")
    same, _ = convert_layout(kp, None, "coco17", "coco17")
    assert same is kp
