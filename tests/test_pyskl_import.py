"""Loading PYSKL / MMAction2 checkpoints into posrec's models.

The fixtures tests/fixtures/pyskl_*_keys.json were written by instantiating PYSKL's own recognizers
(kennymckormick/pyskl @ 3f6795f, imported with mmcv stubbed out; no PYSKL code is in this repo):
each holds the exact (key, shape) list of PYSKL's state dict for one setting, and the logits that
PYSKL's model gave in eval mode when its tensors were filled by ``fill_state_dict`` below and fed
``reference_input``. So these tests check both that every PYSKL tensor lands in the right place and
that posrec then computes what PYSKL computes. The weights are synthetic (deterministic numbers,
not a trained model): no published checkpoint is available offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posrec.errors import PosrecError
from posrec.models import build_model
from posrec.models.pyskl_import import load_pyskl_checkpoint, rename_key

FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = ["stgcn", "stgcnpp", "ctrgcn"]


def fill_state_dict(keys: list[tuple[str, list[int]]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic, well-scaled tensors for a PYSKL key list (numpy's legacy RandomState, whose
    stream is fixed across versions)."""
    rng = np.random.RandomState(seed)
    sd = {}
    for key, shape in keys:
        name = key.rsplit(".", 1)[-1]
        if name == "num_batches_tracked":
            sd[key] = torch.tensor(7)
            continue
        if name == "running_var":
            a = rng.uniform(0.5, 1.5, shape)
        elif name == "running_mean":
            a = rng.normal(0, 0.1, shape)
        elif name == "A":  # (K, V, V): each column sums to about 1 over the K subsets
            a = rng.uniform(0, 2.0 / (shape[0] * shape[-1]), shape)
        elif name == "PA":
            a = rng.uniform(0.5, 1.5, shape)
        elif name == "alpha":
            a = rng.uniform(0.01, 0.05, shape)
        elif name == "weight" and len(shape) == 1:  # BatchNorm scale
            a = rng.uniform(0.8, 1.2, shape)
        elif name == "weight":  # conv / linear: unit-variance outputs
            a = rng.normal(0, 1, shape) / np.sqrt(np.prod(shape[1:]))
        else:  # biases
            a = rng.normal(0, 0.1, shape)
        sd[key] = torch.tensor(a, dtype=torch.float32)
    return sd


def reference_input(shape: list[int], seed: int = 1) -> torch.Tensor:
    return torch.tensor(np.random.RandomState(seed).normal(0, 1, shape), dtype=torch.float32)


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"pyskl_{name}_keys.json").read_text())


def build(fx: dict, **over) -> torch.nn.Module:
    s = {**fx["setting"], **over}
    return build_model(s["arch"], s["num_classes"], s["layout"], s["in_channels"], s["num_person"])


@pytest.mark.parametrize("name", SETTINGS)
def test_every_tensor_lands_in_place(name):
    fx = load_fixture(name)
    sd = fill_state_dict(fx["keys"])
    model = build(fx)
    mapping = load_pyskl_checkpoint({"state_dict": sd, "meta": {}}, model)
    target = model.state_dict()
    dropped = {"backbone.A"}  # PYSKL CTR-GCN's unused backbone-level graph copy
    assert set(mapping) == set(sd) - dropped
    assert set(mapping.values()) == set(target)  # and every posrec tensor is filled
    for key, tensor in sd.items():
        if key in dropped:
            continue
        assert torch.equal(target[mapping[key]], tensor), key
    # the table of prefix renames is all there is to it
    for key, new in mapping.items():
        assert new == rename_key(key)
        assert key.split(".", 2)[-1] in new or key.startswith("cls_head")


@pytest.mark.parametrize("name", SETTINGS)
def test_logits_equal_pyskl(name):
    fx = load_fixture(name)
    model = build(fx)
    load_pyskl_checkpoint(fill_state_dict(fx["keys"]), model)
    model.eval()
    with torch.no_grad():
        out = model(reference_input(fx["input_shape"]))
    ref = torch.tensor(fx["logits"])
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize("name", ["stgcn", "stgcnpp"])
def test_mmaction2_naming(name, tmp_path):
    """MMAction2 1.x names the backbone as PYSKL does; its GCNHead calls the linear layer ``fc``."""
    fx = load_fixture(name)
    sd = fill_state_dict(fx["keys"])
    mm = {k.replace("cls_head.fc_cls.", "cls_head.fc."): v for k, v in sd.items()}
    assert any(k.startswith("cls_head.fc.") for k in mm)
    path = tmp_path / "mmaction2.pth"
    torch.save({"meta": {"epoch": 80}, "state_dict": mm}, path)
    model = build(fx)
    load_pyskl_checkpoint(path, model)
    assert torch.equal(model.fc.weight, sd["cls_head.fc_cls.weight"])
    assert torch.equal(model.fc.bias, sd["cls_head.fc_cls.bias"])


def test_dataparallel_prefix_and_bare_state_dict():
    fx = load_fixture("stgcnpp")
    sd = fill_state_dict(fx["keys"])
    model = build(fx)
    load_pyskl_checkpoint({"module." + k: v for k, v in sd.items()}, model)
    assert torch.equal(model.data_bn.weight, sd["backbone.data_bn.weight"])


def test_checkpoint_of_another_model_is_refused_and_model_untouched():
    sd = fill_state_dict(load_fixture("stgcn")["keys"])  # ST-GCN weights
    model = build(load_fixture("stgcnpp"))  # into ST-GCN++
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PosrecError) as e:
        load_pyskl_checkpoint(sd, model)
    msg = str(e.value)
    assert "\n" not in msg
    assert "checkpoint keys with no place in the model" in msg and "PA" in msg
    assert "model keys the checkpoint does not fill" in msg and "branches" in msg
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_wrong_number_of_classes_names_the_shapes():
    fx = load_fixture("stgcnpp")
    model = build(fx, num_classes=120)
    msg = r"cls_head.fc_cls.weight: checkpoint \(60, 256\) vs model \(120, 256\)"
    with pytest.raises(PosrecError, match=msg):
        load_pyskl_checkpoint(fill_state_dict(fx["keys"]), model)


def test_missing_and_unknown_keys_are_listed():
    fx = load_fixture("stgcn")
    sd = fill_state_dict(fx["keys"])
    del sd["backbone.gcn.3.tcn.conv.weight"]
    sd["backbone.extra.weight"] = torch.zeros(1)
    with pytest.raises(PosrecError) as e:
        load_pyskl_checkpoint(sd, build(fx))
    assert "backbone.extra.weight" in str(e.value)
    assert "blocks.3.tcn.conv.weight" in str(e.value)


def test_unreadable_files(tmp_path):
    model = build(load_fixture("stgcn"))
    with pytest.raises(PosrecError, match="not found"):
        load_pyskl_checkpoint(tmp_path / "nope.pth", model)
    bad = tmp_path / "truncated.pth"
    torch.save(fill_state_dict(load_fixture("stgcn")["keys"]), bad)
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(PosrecError, match="cannot read checkpoint"):
        load_pyskl_checkpoint(bad, model)
