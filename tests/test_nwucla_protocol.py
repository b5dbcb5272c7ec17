"""tools/nwucla_protocol.py on the real NW-UCLA files: view splits, a validation of views 1+2
held out by subject, nothing of view 3 in training or validation, and no output into the repo."""

import importlib.util
from pathlib import Path

import pytest

from posrec.io.pickle import load_dataset

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("nwucla_protocol", ROOT / "tools" / "nwucla_protocol.py")
protocol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protocol)


@pytest.fixture(scope="module")
def written(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("protocol") / "nwucla_protocol.pkl"
    src = shared_data / "skeleton" / "nw_ucla" / "all_sqe"
    assert protocol.main(["--src", str(src), "-o", str(out)]) == 0
    return src, out, load_dataset(out)


def test_splits_by_view_and_subject(written):
    _, _, data = written
    split = {k: set(v) for k, v in data["split"].items()}
    view = {a["frame_dir"]: a["view"] for a in data["annotations"]}
    assert {k: len(v) for k, v in split.items()} == {
        "v1": 516, "v2": 504, "v3": 464, "v12_val": 218, "v12_train": 802}
    for v in (1, 2, 3):
        assert {view[f] for f in split[f"v{v}"]} == {v}
    assert not split["v12_train"] & split["v12_val"]
    assert split["v12_train"] | split["v12_val"] == split["v1"] | split["v2"]
    subjects = {k: {protocol.subject_of(f) for f in split[k]} for k in ("v12_train", "v12_val")}
    assert subjects["v12_val"] == {1, 4} and not subjects["v12_val"] & subjects["v12_train"]
    labels = {a["frame_dir"]: a["label"] for a in data["annotations"]}
    assert {labels[f] for f in split["v12_val"]} == set(range(10))  # every class validated


def test_same_seed_same_file_and_other_seed_other_subjects(written, tmp_path):
    src, out, _ = written
    again = tmp_path / "again.pkl"
    assert protocol.main(["--src", str(src), "-o", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()
    v12 = [a for a in written[2]["annotations"] if a["view"] in (1, 2)]
    assert protocol.choose_val_subjects(v12, 2, seed=1, num_classes=10) != (1, 4)


def test_refuses_to_write_into_the_repository(written, capsys):
    src = written[0]
    target = ROOT / "tools" / "nwucla_protocol_test.pkl"
    assert protocol.main(["--src", str(src), "-o", str(target)]) == 2
    assert not target.exists()
    assert "inside the repository" in capsys.readouterr().err
