"""The JHMDB reader on the real DD-Net release of JHMDB's annotated joints (../shared/data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posrec.errors import PosrecError
from posrec.io.datasets import convert, detect_format
from posrec.io.jhmdb import JHMDB_CLASSES, read_jhmdb
from posrec.skeleton import get_layout


@pytest.fixture(scope="module")
def jhmdb_dir(shared_data: Path) -> Path:
    return shared_data / "skeleton/jhmdb"


@pytest.mark.parametrize("split, n_train, n_test", [(1, 433, 176), (2, 433, 176), (3, 434, 175)])
def test_three_official_splits(jhmdb_dir, split, n_train, n_test):
    data = read_jhmdb(jhmdb_dir, split)
    assert {k: len(v) for k, v in data["split"].items()} == {"train": n_train, "test": n_test}
    assert data["classes"] == list(JHMDB_CLASSES) and len(JHMDB_CLASSES) == 14
    assert not set(data["split"]["train"]) & set(data["split"]["test"])
    labels = {a["label"] for a in data["annotations"]}
    assert labels == set(range(14))


def test_joints_map_into_penn13(jhmdb_dir):
    """Face -> head, shoulders above hips above knees above ankles (image y points down), and
    the person's left side on the image right for a frontal clip, as in Penn Action."""
    import pickle

    raw = pickle.load(open(jhmdb_dir / "GT_train_1.pkl", "rb"))  # plain numpy pickle, ours to read
    a = read_jhmdb(jhmdb_dir, 1)["annotations"][0]
    lay = get_layout("penn13")
    assert a["layout"] == "penn13" and a["keypoint"].shape == (1, len(raw["pose"][0]), 13, 2)
    np.testing.assert_allclose(a["keypoint"][0, :, lay.index("head")], raw["pose"][0][:, 2])
    np.testing.assert_allclose(a["keypoint"][0, :, lay.index("left_wrist")], raw["pose"][0][:, 12])
    kp = read_jhmdb(jhmdb_dir, 1)["annotations"]
    y = np.median(np.concatenate([c["keypoint"][0] for c in kp]), axis=0)[:, 1]
    assert y[lay.index("head")] < y[lay.index("left_shoulder")] < y[lay.index("left_hip")] \
        < y[lay.index("left_knee")] < y[lay.index("left_ankle")]
    assert a["fps"] == 30.0 and (a["keypoint_score"] == 1).all()


def test_format_detection_and_split_from_file_name(jhmdb_dir):
    assert detect_format(jhmdb_dir) == "jhmdb"
    assert detect_format(jhmdb_dir / "GT_test_2.pkl") == "jhmdb"
    data = convert(jhmdb_dir / "GT_train_3.pkl")
    assert data["split"]["train"][0] == "jhmdb3_train_000"


def test_bad_inputs(tmp_path, jhmdb_dir):
    with pytest.raises(PosrecError, match="no JHMDB file GT_train_1.pkl"):
        read_jhmdb(tmp_path, 1)
    with pytest.raises(PosrecError, match="splits 1, 2 and 3"):
        read_jhmdb(jhmdb_dir, 4)
    import pickle

    with open(tmp_path / "GT_train_1.pkl", "wb") as f:
        pickle.dump({"pose": [np.zeros((5, 14, 2))], "label": ["walk"]}, f)
    (tmp_path / "GT_test_1.pkl").write_bytes((tmp_path / "GT_train_1.pkl").read_bytes())
    with pytest.raises(PosrecError, match=r"expected \(T, 15, 2\)"):
        read_jhmdb(tmp_path, 1)


def test_action_dataset_merges_both_sets_and_penn_only_keeps_the_same_penn_carve(shared_data):
    from posrec.actions import ACTION_CLASSES, build_action_dataset

    root = shared_data / "skeleton"
    both = build_action_dataset(root / "penn_action/labels", root / "jhmdb", 1)
    penn = build_action_dataset(root / "penn_action/labels", root / "jhmdb", 1, penn_only=True)
    s, p = both["split"], penn["split"]
    assert both["classes"] == penn["classes"] == list(ACTION_CLASSES) and len(ACTION_CLASSES) == 27
    assert (len(s["test_penn"]), len(s["test_jhmdb"])) == (1068, 176)
    assert set(s["train"]).isdisjoint(s["val"]) and set(s["train"] + s["val"]).isdisjoint(s["test"])
    label = {a["frame_dir"]: ACTION_CLASSES[a["label"]] for a in both["annotations"]}
    jhmdb_ids = set(s["test_jhmdb"])
    assert "golf" not in label.values() and "golf_swing" in {label[i] for i in jhmdb_ids}
    # Penn-only: the same Penn clips in every split, no JHMDB clip anywhere
    assert p["test_jhmdb"] == [] and p["test"] == p["test_penn"] == s["test_penn"]
    penn_ids = {a["frame_dir"] for a in penn["annotations"]}
    assert p["train"] == [i for i in s["train"] if i in penn_ids]
    assert p["val"] == [i for i in s["val"] if i in penn_ids]
    assert len(penn_ids) == 2326


def test_grouped_validation_holds_out_what_another_official_split_tests(shared_data):
    """JHMDB validation carved along split 2: exactly split 1's training clips that split 2
    tests (matched by their joints, the files name no clips), none of them left in training."""
    from posrec.actions import build_action_dataset

    root = shared_data / "skeleton"
    data = build_action_dataset(root / "penn_action/labels", root / "jhmdb", 1, jhmdb_val_split=2)
    s = data["split"]
    key = {a["frame_dir"]: a["keypoint"].tobytes() for a in data["annotations"]}
    tested_by_2 = {a["keypoint"].tobytes() for a in read_jhmdb(root / "jhmdb", 2)["annotations"]
                   if "_test_" in a["frame_dir"]}
    jhmdb_train = [i for i in s["train"] if i.startswith("jhmdb")]
    assert len(s["val_jhmdb"]) == 112 and len(jhmdb_train) + 112 == 433
    assert {key[i] for i in s["val_jhmdb"]} <= tested_by_2
    assert not {key[i] for i in jhmdb_train} & tested_by_2
    assert s["val"] == s["val_penn"] + s["val_jhmdb"] and len(s["val_penn"]) == 127
    assert set(s["val"]).isdisjoint(s["train"]) and set(s["val"]).isdisjoint(s["test"])
    with pytest.raises(ValueError, match="another split"):
        build_action_dataset(root / "penn_action/labels", root / "jhmdb", 1, jhmdb_val_split=1)
