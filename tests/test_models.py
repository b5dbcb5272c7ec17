"""GCN recognizers (posrec.models): shapes, parameter counts, gradients, determinism.

Inputs here are random tensors: these tests are about the modules' contracts, which real
skeletons cannot reach any better (the training tests run on real data).
"""

from __future__ import annotations

import pytest
import torch

from posrec.errors import PosrecError
from posrec.models import ARCHS, build_model
from posrec.skeleton import LAYOUTS

# Parameter counts of PYSKL's own recognizers (backbone + GCNHead), measured by instantiating
# kennymckormick/pyskl @ 3f6795f side by side with posrec's models, 60 classes, C=3 (x, y, score
# for 2D; x, y, z for 3D), M=2:
#   ST-GCN   coco17 (PYSKL stgcn_pyskl_ntu60_xsub_hrnet)    3,088,704  (published: 3.1M)
#   ST-GCN++ coco17 (PYSKL stgcn++_ntu60_xsub_hrnet)        1,393,016  (published: 1.39M)
#   CTR-GCN  ntu25  (PYSKL ctrgcn_pyskl_ntu60_xsub_3dkp)    1,446,672  (paper: 1.46M)
PYSKL_PARAMS = {
    ("stgcn", "coco17"): 3_088_704,
    ("stgcn++", "coco17"): 1_393_016,
    ("ctrgcn", "ntu25"): 1_446_672,
    ("stgcn", "ntu25"): 3_098_832,
    ("stgcn++", "ntu25"): 1_403_144,
    ("ctrgcn", "coco17"): 1_436_496,
}


def nparams(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(("arch", "layout"), list(PYSKL_PARAMS))
def test_parameter_counts_equal_pyskl(arch, layout):
    assert nparams(build_model(arch, 60, layout, in_channels=3)) == PYSKL_PARAMS[arch, layout]


def test_published_parameter_counts():
    assert round(nparams(build_model("stgcn", 60, "coco17")) / 1e6, 1) == 3.1
    assert round(nparams(build_model("stgcn++", 60, "coco17")) / 1e6, 2) == 1.39


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("channels", [2, 3])
def test_output_shape(arch, layout, channels):
    torch.manual_seed(0)
    v = LAYOUTS[layout].num_joints
    model = build_model(arch, 7, layout, in_channels=channels)
    x = torch.randn(2, 2, 12, v, channels)
    out = model(x)
    assert out.shape == (2, 7) and out.dtype == torch.float32 and torch.isfinite(out).all()
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 7)


@pytest.mark.parametrize("arch", ARCHS)
def test_one_person_and_odd_lengths(arch):
    model = build_model(arch, 5, "penn13", in_channels=2, num_person=1).eval()
    for t in (1, 5, 13):
        with torch.no_grad():
            assert model(torch.randn(3, 1, t, 13, 2)).shape == (3, 5)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(arch):
    torch.manual_seed(0)
    model = build_model(arch, 4, "nwucla20", in_channels=3)
    if arch == "ctrgcn":  # alpha starts at 0, which blocks the gradient of the refinement convs
        with torch.no_grad():
            for blk in model.blocks:
                blk.gcn1.alpha.fill_(0.5)
    x = torch.randn(2, 2, 10, 20, 3)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        # a conv bias followed by BatchNorm has zero gradient in theory; everything else moves
        if not (name.endswith(".bias") and p.grad.abs().max() < 1e-6):
            assert p.grad.abs().max() > 0, name


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_is_deterministic_and_per_clip(arch):
    torch.manual_seed(0)
    model = build_model(arch, 6, "coco17", in_channels=3)
    x = torch.randn(3, 2, 9, 17, 3)
    model.train()
    model(x)  # move the BatchNorm running statistics away from their initial values
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(single[0], a[1], rtol=1e-4, atol=1e-5)  # clips do not mix in eval


def test_stgcn_plus_plus_is_stgcn_with_flags():
    pp = build_model("stgcn++", 10, "coco17")
    same = build_model("stgcn", 10, "coco17", graph_mode="spatial", gcn_adaptive="init",
                       gcn_with_res=True, tcn_type="mstcn")
    assert [(k, v.shape) for k, v in pp.state_dict().items()] == \
        [(k, v.shape) for k, v in same.state_dict().items()]
    st = build_model("stgcn", 10, "coco17")
    assert isinstance(st.blocks[0].gcn.PA, torch.nn.Parameter)  # importance weighting
    assert isinstance(pp.blocks[0].gcn.A, torch.nn.Parameter)  # learned graph
    assert "A" not in dict(st.blocks[0].gcn.named_parameters())
    # ten blocks 64-64-64-64-128-128-128-256-256-256, T halved at blocks 5 and 8
    assert [b.gcn.conv.out_channels // 3 for b in st.blocks] == [64] * 4 + [128] * 3 + [256] * 3
    assert [b.tcn.conv.stride[0] for b in st.blocks] == [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]


def test_graph_mode_default_follows_pyskl():
    from posrec.skeleton import get_layout

    st = build_model("stgcn", 3, "coco17")
    pp = build_model("stgcn++", 3, "coco17")
    ctr = build_model("ctrgcn", 3, "coco17")
    lay = get_layout("coco17")
    assert torch.equal(st.blocks[0].gcn.A, torch.from_numpy(lay.adjacency("stgcn_spatial")))
    assert torch.equal(pp.blocks[0].gcn.A.detach(), torch.from_numpy(lay.adjacency("spatial")))
    assert torch.equal(ctr.blocks[0].gcn1.A.detach(), torch.from_numpy(lay.adjacency("spatial")))


def test_flags():
    m = build_model("stgcn", 3, "penn13", in_channels=2, data_bn_type="MVC", num_person=1)
    assert m.data_bn.num_features == 1 * 13 * 2
    m = build_model("stgcn++", 3, "penn13", in_channels=2, dropout=0.5, tcn_dropout=0.1)
    assert isinstance(m.drop, torch.nn.Dropout) and m.drop.p == 0.5
    assert m.blocks[1].tcn.drop.p == 0.1 and isinstance(m.blocks[0].tcn.drop, torch.nn.Identity)
    m = build_model("ctrgcn", 3, "penn13", in_channels=2, num_person=1)
    assert m.data_bn.num_features == 26


def test_build_model_errors():
    with pytest.raises(PosrecError, match="unknown model arch 'gcn'"):
        build_model("gcn", 3, "coco17")
    with pytest.raises(PosrecError, match="unknown layout"):
        build_model("stgcn", 3, "coco18")
    with pytest.raises(PosrecError, match="unknown flag.*gcn_adaptve"):
        build_model("stgcn", 3, "coco17", gcn_adaptve="init")
    with pytest.raises(PosrecError, match="unknown flag.*tcn_type"):
        build_model("ctrgcn", 3, "coco17", tcn_type="mstcn")
    with pytest.raises(PosrecError, match="bad flag.*tcn_type"):
        build_model("stgcn", 3, "coco17", tcn_type="lstm")
    with pytest.raises(PosrecError, match="adjacency mode"):
        build_model("stgcn", 3, "coco17", graph_mode="distance")
    with pytest.raises(PosrecError, match="num_classes"):
        build_model("stgcn", 0, "coco17")


def test_output_memory_format_and_input_untouched():
    model = build_model("stgcn++", 4, "coco17")
    x = torch.randn(2, 2, 8, 17, 3)
    x0 = x.clone()
    out = model(x)
    assert out.is_contiguous()
    assert torch.equal(x, x0)
    feats = model.features(x)
    assert feats.shape == (4, 256, 2, 17)
