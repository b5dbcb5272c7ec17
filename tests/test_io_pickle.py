"""Restricted pickle loading and PYSKL dataset files, built from the real skeletons in ../shared/data."""

import json
import os
import pickle

import numpy as np
import pytest
import scipy.io

from posrec.errors import PosrecError
from posrec.io.pickle import (load_dataset, load_pickle, merge_datasets, save_dataset, save_pickle,
                              validate_dataset)


def _one_line_error(fn, *args) -> str:
    with pytest.raises(PosrecError) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def _penn_annotation(path) -> dict:
    """A PYSKL 2D annotation from one real Penn Action label file (13 joints)."""
    m = scipy.io.loadmat(path)
    xy = np.stack([m["x"], m["y"]], axis=-1).astype(np.float32)  # (T, 13, 2) pixels
    h, w, t = (int(v) for v in m["dimensions"][0])
    return {"frame_dir": path.stem, "label": 0, "total_frames": t, "img_shape": (h, w),
            "original_shape": (h, w), "keypoint": xy[None],
            "keypoint_score": m["visibility"].astype(np.float32)[None]}


def _ucla_annotation(path) -> dict:
    """A 3D annotation (no scores, no image) from one real NW-UCLA sequence (20 Kinect joints)."""
    d = json.loads(path.read_text())
    kp = np.asarray(d["skeletons"], np.float32)[None]  # (1, T, 20, 3) metres
    return {"frame_dir": d["file_name"], "label": d["label"] - 1, "total_frames": kp.shape[1],
            "keypoint": kp}


@pytest.fixture(scope="module")
def dataset(shared_data):
    penn = sorted((shared_data / "skeleton" / "penn_action" / "labels").glob("*.mat"))[:3]
    ucla = sorted((shared_data / "skeleton" / "nw_ucla" / "all_sqe").glob("*.json"))[:2]
    anns = [_penn_annotation(p) for p in penn] + [_ucla_annotation(p) for p in ucla]
    names = [a["frame_dir"] for a in anns]
    return {"split": {"train": names[:3], "test": names[3:]}, "annotations": anns}


class _Recorder(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.globals = set()

    def find_class(self, module, name):
        self.globals.add(f"{module}.{name}")
        return super().find_class(module, name)


def test_dataset_round_trip_readable_by_plain_pickle(dataset, tmp_path):
    path = tmp_path / "ds.pkl"
    save_dataset(dataset, path)
    with open(path, "rb") as f:  # as PYSKL/MMAction2 load it
        rec = _Recorder(f)
        plain = rec.load()
    assert plain["split"] == dataset["split"]
    for a, b in zip(plain["annotations"], dataset["annotations"]):
        assert a.keys() == b.keys()
        assert np.array_equal(a["keypoint"], b["keypoint"]) and a["keypoint"].dtype == np.float32
        assert a["keypoint"].flags.writeable  # PYSKL transforms modify arrays in place
    # Only names that numpy 1.x (PYSKL environments) and 2.x both resolve; never numpy._core.
    assert rec.globals <= {"numpy.ndarray", "numpy.dtype"}, rec.globals
    assert pickle.loads(path.read_bytes())["annotations"][0]["keypoint"].shape[2] == 13
    loaded = load_dataset(path)
    assert [a["frame_dir"] for a in loaded["annotations"]] == dataset["split"]["train"] + dataset["split"]["test"]
    assert loaded["annotations"][3]["keypoint"].shape[-1] == 3


def test_numpy_scalars_and_containers_round_trip(tmp_path):
    obj = {"f": np.float32(1.5), "i": np.int64(7), "b": np.bool_(True), "t": (1, "x"), "s": {1, 2},
           "o": np.array([1, "a", None], dtype=object), "rec": np.zeros(2, [("x", "f4"), ("n", "i2")]),
           "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "bytes": b"\x00\xff"}
    save_pickle(obj, tmp_path / "o.pkl")
    back = load_pickle(tmp_path / "o.pkl")
    assert type(back["f"]) is np.float32 and back["f"] == 1.5
    assert type(back["i"]) is np.int64 and back["i"] == 7
    assert back["b"] is True and back["t"] == (1, "x") and back["s"] == {1, 2}
    assert back["o"].tolist() == [1, "a", None] and back["rec"].dtype == obj["rec"].dtype
    assert np.array_equal(back["fortran"], obj["fortran"]) and back["bytes"] == b"\x00\xff"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_numpy_default_pickles(tmp_path, protocol):
    # Plain pickle.dump of numpy objects, as mmcv (protocol 2) or other tools write them.
    obj = {"keypoint": np.random.default_rng(0).random((2, 5, 17, 2), dtype=np.float32),
           "label": np.int64(3), "img_shape": (240, 426)}
    path = tmp_path / "np.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = load_pickle(path)
    assert np.array_equal(back["keypoint"], obj["keypoint"]) and back["label"] == 3


def test_reads_real_third_party_pickle(shared_data):
    labels = load_pickle(shared_data / "skeleton" / "nw_ucla" / "val_label.pkl")
    assert len(labels) == 464 and labels[0]["file_name"].endswith("_v03")


class _Malicious:
    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


def test_malicious_pickle_is_refused_not_run(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"annotations": [_Malicious(sentinel)]}, protocol=4))
    msg = _one_line_error(load_pickle, path)
    assert "refusing to load" in msg and "system" in msg and "evil.pkl" in msg
    assert not sentinel.exists()
    # Nor through the dataset loader, nor with a global hidden in protocol 0.
    path.write_bytes(pickle.dumps([_Malicious(sentinel)], protocol=0))
    assert "refusing to load" in _one_line_error(load_dataset, path)
    assert not sentinel.exists()


def test_codecs_encode_only_latin1(tmp_path):
    # Protocol-2 pickles store bytes via _codecs.encode(text, "latin1"); no other codec is allowed.
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x05\x00\x00\x00rot13q\x02\x86q\x03Rq\x04.")
    assert "rot13" in _one_line_error(load_pickle, path)


def test_corrupt_pickles_are_one_line_errors(dataset, tmp_path):
    good = tmp_path / "good.pkl"
    save_dataset(dataset, good)
    data = good.read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _one_line_error(load_pickle, cut)
    cut.write_bytes(b"not a pickle at all\n")
    assert "truncated or corrupt" in _one_line_error(load_pickle, cut)
    cut.write_bytes(b"")
    assert "empty" in _one_line_error(load_pickle, cut)
    assert "not found" in _one_line_error(load_pickle, tmp_path / "missing.pkl")


def _copy(dataset) -> dict:
    return {"split": {k: list(v) for k, v in dataset["split"].items()},
            "annotations": [dict(a) for a in dataset["annotations"]]}


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][0].pop("keypoint_score"), "needs 'keypoint_score'"),
    (lambda d: d["annotations"][0].pop("img_shape"), "needs 'img_shape'"),
    (lambda d: d["annotations"][0].pop("frame_dir"), "missing 'frame_dir'"),
    (lambda d: d["annotations"][1].pop("keypoint"), "missing 'keypoint'"),
    (lambda d: d["annotations"][0].update(total_frames=5), "total_frames is 5"),
    (lambda d: d["annotations"][0].update(keypoint_score=np.zeros((1, 2, 13))), "must be float"),
    (lambda d: d["annotations"][0].update(keypoint=[[1, 2]]), "must be a float array"),
    (lambda d: d["annotations"][0].update(label=-1), "'label'"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "appears twice"),
    (lambda d: d["split"]["test"].append("nope"), "no annotation"),
    (lambda d: d.pop("annotations"), "missing 'annotations'"),
])
def test_dataset_schema_errors(dataset, change, message):
    bad = _copy(dataset)
    change(bad)
    assert message in _one_line_error(validate_dataset, bad)


def test_dataset_normalisation(dataset):
    ds = _copy(dataset)
    ds["annotations"][0]["keypoint"] = ds["annotations"][0]["keypoint"].astype(np.float16)
    ds["annotations"][0]["label"] = np.int64(4)
    out = validate_dataset(ds)
    assert out["annotations"][0]["keypoint"].dtype == np.float32
    assert type(out["annotations"][0]["label"]) is int
    bare = validate_dataset(list(_copy(dataset)["annotations"]))  # older MMAction2 files: a list
    assert bare["split"] == {} and len(bare["annotations"]) == 5


def test_merge_shards(dataset, tmp_path):
    a, b = _copy(dataset), _copy(dataset)
    a["annotations"], b["annotations"] = a["annotations"][:2], b["annotations"][2:]
    a["split"] = {"train": a["split"]["train"][:2]}
    b["split"] = {"train": b["split"]["train"][2:], "test": b["split"]["test"]}
    a["classes"] = b["classes"] = ["baseball_pitch", "pick up with one hand"]
    save_dataset(a, tmp_path / "a.pkl")
    save_dataset(b, tmp_path / "b.pkl")
    merged = merge_datasets([tmp_path / "a.pkl", tmp_path / "b.pkl"])
    assert merged["split"] == dataset["split"] and merged["classes"] == a["classes"]
    assert [x["frame_dir"] for x in merged["annotations"]] == [x["frame_dir"] for x in dataset["annotations"]]
    save_dataset(merged, tmp_path / "all.pkl")  # consistent again
    msg = _one_line_error(merge_datasets, [tmp_path / "a.pkl", tmp_path / "all.pkl"])
    assert "a.pkl" in msg and "all.pkl" in msg
    assert "no dataset files" in _one_line_error(merge_datasets, [])
    b["classes"] = ["other"]
    save_dataset(b, tmp_path / "b.pkl")
    assert "disagree on 'classes'" in _one_line_error(merge_datasets, [tmp_path / "a.pkl", tmp_path / "b.pkl"])


def test_library_writers_never_overwrite_their_inputs(dataset, tmp_path):
    """The protection lives in the functions, not only in the CLI."""
    a = {**dataset, "split": {"train": [dataset["annotations"][0]["frame_dir"]]},
         "annotations": dataset["annotations"][:1]}
    b = {**dataset, "split": {"train": [dataset["annotations"][1]["frame_dir"]]},
         "annotations": dataset["annotations"][1:2]}
    save_dataset(a, tmp_path / "a.pkl")
    save_dataset(b, tmp_path / "b.pkl")
    before = (tmp_path / "a.pkl").read_bytes()
    os.symlink(tmp_path / "a.pkl", tmp_path / "link.pkl")
    for out in (tmp_path / "a.pkl", tmp_path / "link.pkl"):
        msg = _one_line_error(merge_datasets, [tmp_path / "a.pkl", tmp_path / "b.pkl"], out)
        assert "refusing to overwrite the input" in msg
    with pytest.raises(PosrecError, match="refusing to overwrite the input"):
        save_dataset(b, tmp_path / "a.pkl", inputs=[tmp_path / "a.pkl"])
    assert (tmp_path / "a.pkl").read_bytes() == before
    merged = merge_datasets([tmp_path / "a.pkl", tmp_path / "b.pkl"], tmp_path / "ab.pkl")
    assert load_dataset(tmp_path / "ab.pkl")["split"] == merged["split"]
