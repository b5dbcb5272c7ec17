"""Dataset readers on the real data in ../shared/data (Penn Action, NW-UCLA, Kinetics-skeleton),
the NTU .skeleton parser on a constructed file, the PYSKL pickle round trip and SkeletonDataset."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from posrec.data.dataset import SkeletonDataset, check_layout
from posrec.errors import PosrecError
from posrec.io import pickle as pk
from posrec.io.datasets import convert, dataset_info, detect_format, format_dataset_info
from posrec.io.ntu import ntu_splits, parse_ntu_name, parse_skeleton_file, read_ntu, read_ntu_skeleton
from posrec.io.penn import ANATOMICAL_ORDER, PENN_CLASSES, read_penn_mat
from posrec.skeleton import get_layout

PENN = "skeleton/penn_action/labels"
UCLA = "skeleton/nw_ucla"
KIN = "skeleton/kinetics_skeleton_sample"


@pytest.fixture(scope="session")
def penn(shared_data: Path) -> dict:
    """All of Penn Action, converted once per session (about a second)."""
    return convert(shared_data / PENN, "penn")


@pytest.fixture(scope="session")
def ucla(shared_data: Path) -> dict:
    return convert(shared_data / UCLA, "nwucla")


def _by_id(d: dict) -> dict:
    return {a["frame_dir"]: a for a in d["annotations"]}


# --- Penn Action ---------------------------------------------------------------------------------

def test_penn_counts_and_split(penn):
    assert len(penn["annotations"]) == 2326
    assert {k: len(v) for k, v in penn["split"].items()} == {"train": 1258, "test": 1068}
    assert penn["classes"] == sorted(penn["classes"]) and len(penn["classes"]) == 15
    assert sum(a["total_frames"] for a in penn["annotations"]) == 163841
    assert set(penn["split"]["train"]).isdisjoint(penn["split"]["test"])
    counts = np.bincount([a["label"] for a in penn["annotations"]], minlength=15)
    assert counts.min() == 82 and counts.max() == 231  # jump_rope, squat
    assert {a["layout"] for a in penn["annotations"]} == {"penn13"}


def test_penn_clip_matches_mat(penn, shared_data):
    a = _by_id(penn)["0001"]
    mat = scipy.io.loadmat(str(shared_data / PENN / "0001.mat"))
    assert a["label"] == PENN_CLASSES.index("baseball_pitch") and "0001" in penn["split"]["test"]
    assert a["keypoint"].shape == (1, 151, 13, 2) and a["keypoint"].dtype == np.float32
    assert a["keypoint_score"].shape == (1, 151, 13) and a["img_shape"] == (360, 480)
    order = list(ANATOMICAL_ORDER)  # the file's left/right columns swapped, head kept
    np.testing.assert_allclose(a["keypoint"][0, ..., 0], mat["x"][:, order])
    np.testing.assert_allclose(a["keypoint"][0, ..., 1], mat["y"][:, order])
    # invisible joints keep their position with score 0.5: visibility is recoverable exactly
    np.testing.assert_array_equal(a["keypoint_score"][0] == 1.0, mat["visibility"][:, order] == 1)
    assert set(np.unique(a["keypoint_score"])) <= {0.0, 0.5, 1.0}


def test_penn_left_and_right_are_the_bodys_own(penn, shared_data):
    """Penn's files label the mirror sides; read, a joint called left is the body's left, as in
    COCO, JHMDB and MoveNet's output (posrec/io/penn.py says how this was measured)."""
    lay = get_layout("penn13")
    ls, rs = lay.index("left_shoulder"), lay.index("right_shoulder")
    lw, rw = lay.index("left_wrist"), lay.index("right_wrist")
    facing, throws = [], []
    for a in penn["annotations"]:
        m = scipy.io.loadmat(str(shared_data / PENN / f"{a['frame_dir']}.mat"), variable_names=("pose",))
        kp, vis = a["keypoint"][0], a["keypoint_score"][0] == 1
        if str(m["pose"][0]) == "front":  # facing the camera: own left shoulder on image right
            ok = vis[:, ls] & vis[:, rs]
            if ok.any():
                facing.append(np.mean(kp[ok, ls, 0] > kp[ok, rs, 0]))
        if PENN_CLASSES[a["label"]] in ("baseball_pitch", "tennis_serve", "bowl"):
            def travel(j):
                ok = vis[1:, j] & vis[:-1, j]
                return np.linalg.norm(np.diff(kp[:, j], axis=0), axis=-1)[ok].sum()
            throws.append(travel(rw) > travel(lw))  # most people throw right-handed
    assert len(facing) > 400 and np.median(facing) > 0.9
    assert len(throws) > 500 and np.mean(throws) > 0.6


def test_penn_mat_missing_field(tmp_path, shared_data):
    mat = scipy.io.loadmat(str(shared_data / PENN / "0002.mat"))
    fields = {k: v for k, v in mat.items() if not k.startswith("__") and k != "visibility"}
    bad = tmp_path / "0002.mat"
    scipy.io.savemat(str(bad), fields)
    with pytest.raises(PosrecError, match=r"0002\.mat.*'visibility'"):
        read_penn_mat(bad)
    with pytest.raises(PosrecError, match="visibility"):
        convert(tmp_path, "penn")


def test_penn_invisible_score_option(shared_data):
    a, split = read_penn_mat(shared_data / PENN / "0001.mat", invisible_score=0.0)
    assert split == "test" and set(np.unique(a["keypoint_score"])) <= {0.0, 1.0}


# --- NW-UCLA -------------------------------------------------------------------------------------

def test_nwucla_cross_view(ucla):
    annos = ucla["annotations"]
    assert len(annos) == 1484
    assert {k: len(v) for k, v in ucla["split"].items()} == {"train": 1020, "test": 464}
    by = _by_id(ucla)
    assert all(n.endswith("_v03") for n in ucla["split"]["test"])
    assert not any(n.endswith("_v03") for n in ucla["split"]["train"])
    assert len(ucla["classes"]) == 10 and sorted({a["label"] for a in annos}) == list(range(10))
    a = by["a01_s01_e00_v01"]
    assert a["keypoint"].ndim == 4 and a["keypoint"].shape[0] == 1 and a["keypoint"].shape[2:] == (20, 3)
    assert "keypoint_score" not in a and a["layout"] == "nwucla20" and a["label"] == 0
    lengths = [x["total_frames"] for x in annos]
    assert (min(lengths), int(np.median(lengths)), max(lengths)) == (1, 31, 201)
    assert by["a12_s01_e00_v01"]["label"] == 9  # a12 (carry) is the tenth class
    # the subject of aXX_sYY_eZZ_vNN, which the validation carve groups by: the 10 of MANIFEST
    assert by["a12_s01_e00_v01"]["subject"] == 1 and by["a01_s10_e00_v03"]["subject"] == 10
    assert sorted({x["subject"] for x in annos}) == list(range(1, 11))


def test_nwucla_val_label_mismatch(tmp_path, shared_data):
    src = shared_data / UCLA / "all_sqe"
    for n in ("a01_s01_e00_v01", "a01_s01_e00_v02", "a01_s01_e00_v03"):
        shutil.copy(src / f"{n}.json", tmp_path)
    pk.save_pickle([{"file_name": "a01_s01_e00_v03", "length": 1, "label": 1}], tmp_path / "val_label.pkl")
    d = convert(tmp_path, "nwucla")  # consistent: passes
    assert {k: len(v) for k, v in d["split"].items()} == {"train": 2, "test": 1}
    pk.save_pickle([{"file_name": "a02_s01_e00_v03", "length": 1, "label": 2}], tmp_path / "val_label.pkl")
    with pytest.raises(PosrecError, match="val_label.pkl"):
        convert(tmp_path, "nwucla")


# --- Kinetics-skeleton ---------------------------------------------------------------------------

def test_kinetics_sample(shared_data):
    path = shared_data / KIN / "--33Lscn6sk.json"
    d = convert(path)  # format detected from the JSON keys
    (a,) = d["annotations"]
    assert a["total_frames"] == 189 and a["label"] == 129 and d["classes"][129] == "flipping pancake"
    assert a["keypoint"].shape == (2, 189, 18, 2) and a["keypoint_score"].shape == (2, 189, 18)
    assert a["img_shape"] == (1, 1) and a["layout"] == "openpose18"
    assert 0 <= a["keypoint"].min() and a["keypoint"].max() < 1.05  # OpenPose may overshoot a bit
    s = a["keypoint_score"].sum(-1)
    assert np.all(s[0] >= s[1])  # people ranked by total score in every frame
    raw = json.loads(path.read_text())
    best = max(raw["data"][0]["skeleton"], key=lambda p: sum(p["score"]))
    np.testing.assert_allclose(a["keypoint"][0, 0].ravel(), best["pose"], atol=1e-6)
    px = convert(path, "kinetics", img_shape=(256, 340))["annotations"][0]
    np.testing.assert_allclose(px["keypoint"], a["keypoint"] * [340, 256], rtol=1e-6)
    assert px["img_shape"] == (256, 340)
    assert dataset_info(path)["frames"]["total"] == 189  # a source path works too


def test_kinetics_directory(shared_data):
    d = convert(shared_data / KIN, "kinetics", max_person=3)
    assert {a["frame_dir"] for a in d["annotations"]} == {
        "--33Lscn6sk", "S004C002P003R001A055_rgb", "S004C003P003R001A007_rgb"}
    assert d["split"] == {"all": sorted(d["split"]["all"])} and len(d["split"]["all"]) == 3
    assert max(a["keypoint"].shape[0] for a in d["annotations"]) == 3


# --- NTU RGB+D .skeleton -------------------------------------------------------------------------
# The real NTU files are not available here: these tests build files to the documented format.

def _body_block(body_id: int, joints: np.ndarray, tracking: int = 2) -> list[str]:
    """One body in a frame: 10 body-info values, the joint count, 25 rows of 12 values."""
    rows = [f"{body_id} 0 1 1 1 1 0 0.1 0.2 2", "25"]
    for j, (x, y, z) in enumerate(joints):
        # x y z depthX depthY colorX colorY orientation(w x y z) trackingState
        rows.append(f"{x:.6f} {y:.6f} {z:.6f} {100 + j} {200 + j} {960 + 100 * x:.3f} "
                    f"{540 - 100 * y:.3f} 1 0 0 0 {tracking if j != 3 else 1}")
    return rows


def _actor(t: np.ndarray, dx: float) -> np.ndarray:
    """(T, 25, 3) a tall, moving body: joints spread 1.5 m in y, 0.4 m in x."""
    base = np.stack([np.linspace(-0.2, 0.2, 25), np.linspace(-0.8, 0.7, 25), np.full(25, 3.0)], -1)
    return base[None] + np.stack([dx + 0.05 * np.sin(t), 0 * t, 0.02 * t], -1)[:, None]


def _write_ntu(path: Path, n_frames: int = 30, ghost: bool = True) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n_frames, dtype=float)
    a, b = _actor(t, -0.5), _actor(t * 3, 0.6)  # b moves more: it ranks first
    lines = [str(n_frames + 1)]
    for f in range(n_frames):
        bodies = [(111, a[f]), (222, b[f])]
        if ghost and f < 5:  # a short-lived flicker: dropped (<= 11 frames)
            bodies.append((333, a[f] + 5 * np.sin(f)))
        lines.append(str(len(bodies)))
        for bid, j in bodies:
            lines += _body_block(bid, j)
    lines.append("0")  # a final frame without anybody: dropped
    path.write_text("\n".join(lines) + "\n")
    return a, b


def test_ntu_skeleton_parser_constructed(tmp_path):
    """Synthetic: no real NTU .skeleton file is available here, so this one is written to the
    documented format (two actors and a 5-frame ghost body)."""
    path = tmp_path / "S001C002P003R002A013.skeleton"
    a, b = _write_ntu(path)
    bodies = parse_skeleton_file(path)
    assert set(bodies) == {"111", "222", "333"} and bodies["111"]["joints"].shape == (30, 25, 12)
    assert len(bodies["333"]["frames"]) == 5
    anno = read_ntu_skeleton(path)
    assert anno["frame_dir"] == "S001C002P003R002A013" and anno["label"] == 12
    assert anno["keypoint"].shape == (2, 30, 25, 3) and "keypoint_score" not in anno
    np.testing.assert_allclose(anno["keypoint"][0], b, atol=1e-5)  # more motion -> person 0
    np.testing.assert_allclose(anno["keypoint"][1], a, atol=1e-5)
    two = read_ntu_skeleton(path, mode="2d")
    assert two["keypoint"].shape == (2, 30, 25, 2) and two["img_shape"] == (1080, 1920)
    np.testing.assert_allclose(two["keypoint"][0, ..., 0], 960 + 100 * b[..., 0], atol=1e-3)
    np.testing.assert_allclose(two["keypoint"][0, ..., 1], 540 - 100 * b[..., 1], atol=1e-3)
    assert np.all(two["keypoint_score"][:, :, 3] == 0.5)  # trackingState 1 = inferred
    assert np.all(np.delete(two["keypoint_score"], 3, axis=2) == 1.0)


def test_ntu_bad_file(tmp_path):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("3\n1\n111 0 1 1 1 1 0 0 0 2\n25\n0 0 0\n")
    with pytest.raises(PosrecError, match="malformed"):
        read_ntu_skeleton(path)
    with pytest.raises(PosrecError, match="SsssCccc"):
        parse_ntu_name("clip.skeleton")


def test_ntu_directory_and_splits(tmp_path):
    names = ["S001C001P001R001A001", "S001C002P003R001A002", "S002C003P002R002A060",
             "S018C001P045R001A061"]
    for n in names:
        _write_ntu(tmp_path / f"{n}.skeleton", n_frames=15, ghost=False)
    (tmp_path / "S001C001P007R001A005.skeleton").write_text("2\n0\n0\n")  # a "missing skeleton"
    d120 = read_ntu(tmp_path)  # A061 present: NTU-120
    assert len(d120["classes"]) == 120 and d120["skipped"] == ["S001C001P007R001A005"]
    assert set(d120["split"]) == {"xsub_train", "xsub_val", "xset_train", "xset_val"}
    assert d120["split"]["xset_train"] == ["S002C003P002R002A060", "S018C001P045R001A061"]
    assert d120["split"]["xsub_val"] == ["S001C002P003R001A002"]  # performer 3 tests
    d60 = convert(tmp_path, "ntu", version=60)
    assert len(d60["annotations"]) == 3 and len(d60["classes"]) == 60
    assert d60["split"]["xview_val"] == ["S001C001P001R001A001"]  # camera 1 tests
    assert d60["split"]["xsub_train"] == ["S001C001P001R001A001", "S002C003P002R002A060"]


def test_ntu_standard_split_rules():
    names = [f"S{s:03d}C{c:03d}P{p:03d}R001A001" for s in (1, 2) for c in (1, 2, 3) for p in (1, 3, 38, 40)]
    sp = ntu_splits(names, 60)
    assert all(parse_ntu_name(n)["subject"] in (1, 38) for n in sp["xsub_train"])
    assert all(parse_ntu_name(n)["camera"] in (2, 3) for n in sp["xview_train"])
    sp = ntu_splits(names, 120)
    assert all(parse_ntu_name(n)["setup"] == 2 for n in sp["xset_train"]) and len(sp["xset_val"]) == 12


# --- pickles, info, dispatcher -------------------------------------------------------------------

def test_pyskl_pickle_round_trip(penn, tmp_path):
    keep = set(penn["split"]["train"][:20] + penn["split"]["test"][:10])
    small = {"split": {k: [x for x in v if x in keep] for k, v in penn["split"].items()},
             "annotations": [a for a in penn["annotations"] if a["frame_dir"] in keep],
             "classes": penn["classes"]}
    path = tmp_path / "penn.pkl"
    pk.save_dataset(small, path)
    with open(path, "rb") as f:  # read the raw dict as PYSKL would (plain pickle)
        raw = pickle.load(f)
    assert set(raw) >= {"split", "annotations"} and len(raw["split"]["train"]) == 20
    r0, s0 = raw["annotations"][0], small["annotations"][0]
    for key in ("frame_dir", "label", "img_shape", "total_frames"):
        assert r0[key] == s0[key]
    np.testing.assert_array_equal(r0["keypoint"], s0["keypoint"])
    back = convert(path)
    assert back["classes"] == penn["classes"] and back["split"] == small["split"]
    assert {a["layout"] for a in back["annotations"]} == {"penn13"}  # posrec's own key survives
    np.testing.assert_array_equal(back["annotations"][5]["keypoint_score"],
                                  small["annotations"][5]["keypoint_score"])


def test_foreign_pickle_gets_layout(tmp_path):
    rng = np.random.default_rng(0)
    annos = [dict(frame_dir=f"clip{i}", label=i, img_shape=(480, 640), original_shape=(480, 640),
                  total_frames=8, keypoint=rng.uniform(0, 400, (1, 8, 17, 2)).astype(np.float16),
                  keypoint_score=rng.uniform(0, 1, (1, 8, 17)).astype(np.float16)) for i in range(3)]
    three = [dict(frame_dir="n0", label=0, total_frames=4, keypoint=np.ones((2, 4, 25, 3), np.float32))]
    pk.save_pickle({"split": {"xsub_val": ["clip0", "clip2"]}, "annotations": annos}, tmp_path / "a.pkl")
    pk.save_pickle({"split": {"xsub_val": ["n0"]}, "annotations": three}, tmp_path / "b.pkl")
    a, b = convert(tmp_path / "a.pkl", "pyskl"), convert(tmp_path / "b.pkl")
    assert {x["layout"] for x in a["annotations"]} == {"coco17"}
    assert a["annotations"][0]["keypoint"].dtype == np.float32
    assert b["annotations"][0]["layout"] == "ntu25" and dataset_info(b)["dims"] == "3D"


def test_dataset_info(penn):
    info = dataset_info(penn)
    assert info["num_clips"] == 2326 and info["splits"] == {"train": 1258, "test": 1068}
    assert info["num_classes"] == 15 and info["layouts"] == ["penn13"] and info["dims"] == "2D"
    assert info["frames"]["total"] == 163841 and info["frames"]["min"] == 18
    assert info["frames"]["max"] == 663 and info["max_persons"] == 1
    text = format_dataset_info(info)
    assert "train 1258, test 1068" in text and "baseball_pitch" in text
    json.dumps(info)  # serialisable for `posrec data info --json`


def test_detect_format(shared_data, tmp_path):
    assert detect_format(shared_data / PENN) == "penn"
    assert detect_format(shared_data / UCLA) == "nwucla"
    assert detect_format(shared_data / UCLA / "all_sqe" / "a01_s01_e00_v01.json") == "nwucla"
    assert detect_format(shared_data / KIN) == "kinetics"
    (tmp_path / "x.pkl").touch()
    assert detect_format(tmp_path / "x.pkl") == "pickle"
    with pytest.raises(PosrecError, match="unknown dataset format"):
        convert(shared_data / PENN, "hdf5")
    with pytest.raises(PosrecError, match="no such file"):
        convert(tmp_path / "nothing", "penn")
    with pytest.raises(PosrecError, match="format 'penn'"):
        convert(shared_data / PENN, "penn", max_person=2)


# --- SkeletonDataset -----------------------------------------------------------------------------

def test_skeleton_dataset_penn(penn):
    ds = SkeletonDataset(penn, "train")
    assert len(ds) == 1258 and ds.num_classes == 15 and ds.class_names[0] == "baseball_pitch"
    assert ds.layout == "penn13" and len(ds.labels) == 1258
    x, y = ds[0]
    a = ds.annotations[0]
    assert x.shape == (1, 1, a["total_frames"], 13, 3) and x.dtype.is_floating_point  # x, y, score
    assert y == a["label"]
    assert check_layout(ds, "penn13") == "penn13"
    with pytest.raises(PosrecError, match="does not match the model's layout 'coco17'"):
        check_layout(penn, "coco17")


def test_skeleton_dataset_errors(penn):
    few = penn["annotations"][:3]
    bad = {"split": {"train": [a["frame_dir"] for a in few], "val": []},
           "annotations": [dict(few[0]), dict(few[1], label=17), dict(few[2])], "classes": penn["classes"]}
    with pytest.raises(PosrecError, match=f"label 17 out of range for 15 classes in clip {few[1]['frame_dir']}"):
        SkeletonDataset(bad, "train")
    with pytest.raises(PosrecError, match="split 'val' is empty"):
        SkeletonDataset(bad, "val")
    with pytest.raises(PosrecError, match="no split 'test'; it has train, val"):
        SkeletonDataset(bad, "test")
