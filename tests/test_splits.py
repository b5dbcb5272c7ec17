"""The validation split: carved from the real training data, never overlapping the test split."""

from __future__ import annotations

from collections import Counter

import pytest

from posrec.config import config_from_dict
from posrec.errors import PosrecError
from posrec.io.datasets import convert
from posrec.splits import prepare_splits


@pytest.fixture(scope="module")
def penn(shared_data):
    return convert(shared_data / "skeleton" / "penn_action" / "labels", "penn")


@pytest.fixture(scope="module")
def nwucla(shared_data):
    return convert(shared_data / "skeleton" / "nw_ucla", "nwucla")


def _cfg(layout, **data):
    return config_from_dict({"data": {"layout": layout, **data}})


def test_penn_carve_is_stratified_seeded_and_apart_from_train_and_test(penn):
    out = prepare_splits(penn, _cfg("penn13"))
    train, val, test = (set(out["split"][k]) for k in ("train", "val", "test"))
    assert out["validation"] == {"split": "val", "carved_from": "train", "fraction": 0.1,
                                 "seed": 0, "grouped_by": "clip"}  # Penn has no subjects
    assert not val & test and not val & train and not train & test
    assert train | val == set(penn["split"]["train"])  # nothing lost, nothing added
    label = {a["frame_dir"]: a["label"] for a in penn["annotations"]}
    whole = Counter(label[fd] for fd in penn["split"]["train"])
    held = Counter(label[fd] for fd in val)
    assert held == {c: max(1, round(0.1 * n)) for c, n in whole.items()}  # every class, 10 %
    assert out["split"]["val"] == prepare_splits(penn, _cfg("penn13"))["split"]["val"]
    other = prepare_splits(penn, _cfg("penn13", val_seed=1))["split"]["val"]
    assert set(other) != val and Counter(label[fd] for fd in other) == held
    assert penn["split"]["train"] != out["split"]["train"]  # a new dict: the input is untouched
    assert len(penn["split"]["train"]) == 1258


def test_nwucla_carve_holds_out_whole_subjects(nwucla):
    out = prepare_splits(nwucla, _cfg("nwucla20"))
    assert out["validation"]["grouped_by"] == "subject"
    subject = {a["frame_dir"]: a["subject"] for a in nwucla["annotations"]}
    assert all(subject[fd] == int(fd.split("_")[1][1:]) for fd in subject)  # aXX_sYY_eZZ_vNN
    train, val, test = (out["split"][k] for k in ("train", "val", "test"))
    assert not set(val) & set(test) and not set(val) & set(train)
    assert not {subject[fd] for fd in val} & {subject[fd] for fd in train}
    assert all(fd.endswith(("_v01", "_v02")) for fd in val)  # from the training views only
    assert 0.05 < len(val) / (len(val) + len(train)) < 0.2  # about one subject in ten
    label = {a["frame_dir"]: a["label"] for a in nwucla["annotations"]}
    assert len({label[fd] for fd in val}) == 10  # every class is validated


def test_named_val_split_and_refusals(penn):
    data = {**penn, "split": {**penn["split"], "held": penn["split"]["train"][:30]}}
    out = prepare_splits(data, _cfg("penn13", val_split="held"))
    assert out["validation"] == {"split": "held"} and out["split"]["held"] == data["split"]["held"]
    for name, words in (("test", "is the test split 'test'"), ("train", "is the training split")):
        with pytest.raises(PosrecError, match=words):
            _cfg("penn13", val_split=name)
    leaky = {**penn, "split": {**penn["split"], "held": penn["split"]["test"][:3]}}
    with pytest.raises(PosrecError, match="shares 3 clips with the test split"):
        prepare_splits(leaky, _cfg("penn13", val_split="held"))
    assert prepare_splits(penn, _cfg("penn13", val_fraction=0))["validation"] is None
    with pytest.raises(PosrecError, match="val_fraction"):
        _cfg("penn13", val_fraction=1.0)
