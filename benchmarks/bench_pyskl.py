"""posrec's ST-GCN, ST-GCN++ and CTR-GCN against PYSKL's, side by side in one process.

    git clone https://github.com/kennymckormick/pyskl /tmp/pyskl   # once; needs no install
    python benchmarks/bench_pyskl.py --pyskl /tmp/pyskl [--threads 1 2] [--batch 16] [--repeats 7]

PYSKL's model modules (``pyskl/models/gcns``, ``pyskl/utils/graph.py``) are imported from the
checkout with the few mmcv helpers they use stubbed out here, so neither mmcv nor PYSKL has to be
installed; nothing of PYSKL is copied into posrec. Each posrec model is loaded with the PYSKL
model's weights through ``posrec.models.pyskl_import`` and must give the same logits (checked
before timing), so both sides compute the same function with the same parameter count.

Settings: PYSKL's published NTU-60 configurations: ST-GCN and ST-GCN++ on HRNet COCO-17 2D
keypoints (x, y, score), CTR-GCN on NTU 3D joints (25 joints), 2 people, 100-frame clips,
60 classes. The input is random with those shapes: the cost of these dense convolutions does not
depend on the values (real-data accuracy is in RESULTS.md).

For every model and thread count the two implementations alternate within each repetition
(same input, same optimiser: SGD + Nesterov), and the table gives the median over repetitions of
training samples/s (forward, backward, step) and inference clips/s (eval, no_grad), and the
ratio posrec / PYSKL (above 1: posrec is faster).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posrec.models import build_model  # noqa: E402
from posrec.models.pyskl_import import load_pyskl_checkpoint  # noqa: E402

# arch -> (PYSKL graph layout, posrec layout, joints, channels)
SETTINGS = {"stgcn": ("coco", "coco17", 17, 3),
            "stgcn++": ("coco", "coco17", 17, 3),
            "ctrgcn": ("nturgb+d", "ntu25", 25, 3)}
NUM_CLASSES, NUM_PERSON, CLIP_LEN = 60, 2, 100


# --------------------------------------------------------------------------------------------
# PYSKL's modules, imported from a checkout with mmcv stubbed


def _module(name: str, path: Path | None = None, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    if path is not None:
        m.__path__ = [str(path)]
    sys.modules[name] = m
    return m


class _Registry:
    """Stands in for mmcv's Registry: ``@BACKBONES.register_module()`` returns the class."""

    def register_module(self, *args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda cls: cls)


def import_pyskl(checkout: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """PYSKL's ``stgcn`` and ``ctrgcn`` backbone modules from a source checkout."""
    from torch.nn.modules.batchnorm import _BatchNorm

    src = checkout / "pyskl"
    if not (src / "models" / "gcns" / "stgcn.py").is_file():
        sys.exit(f"error: {checkout} is not a PYSKL checkout (no pyskl/models/gcns/stgcn.py)")

    def build_norm_layer(cfg, channels):
        return "bn", nn.BatchNorm2d(channels)  # PYSKL's GCNs only use BN

    def build_activation_layer(cfg):
        return nn.ReLU()  # the default act_cfg of every block timed here

    _module("mmcv")
    _module("mmcv.cnn", build_norm_layer=build_norm_layer,
            build_activation_layer=build_activation_layer)
    _module("mmcv.runner", load_checkpoint=lambda *a, **k: None)
    _module("mmcv.utils", _BatchNorm=_BatchNorm)
    _module("pyskl", src)
    utils = _module("pyskl.utils", src / "utils")
    graph = importlib.import_module("pyskl.utils.graph")
    utils.Graph, utils.cache_checkpoint = graph.Graph, (lambda path: path)
    _module("pyskl.models", src / "models")
    _module("pyskl.models.builder", BACKBONES=_Registry(), HEADS=_Registry())
    _module("pyskl.models.gcns", src / "models" / "gcns")
    return (importlib.import_module("pyskl.models.gcns.stgcn"),
            importlib.import_module("pyskl.models.gcns.ctrgcn"))


class PysklRecognizer(nn.Module):
    """PYSKL's RecognizerGCN + GCNHead at test time (dropout 0): pool people, time, joints; fc.

    Keys ``backbone.*`` and ``cls_head.fc_cls.*`` as in PYSKL's checkpoints.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, channels: int = 256):
        super().__init__()
        self.backbone = backbone
        self.cls_head = nn.Module()
        self.cls_head.fc_cls = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, M, T, V, C) -> (N, classes)
        feat = self.backbone(x)  # (N, M, C', T', V)
        return self.cls_head.fc_cls(feat.mean(dim=(3, 4)).mean(1))


def pyskl_model(arch: str, modules) -> nn.Module:
    stgcn, ctrgcn = modules
    layout, _, _, channels = SETTINGS[arch]
    if arch == "stgcn":  # PYSKL configs/stgcn/stgcn_pyskl_ntu60_xsub_hrnet
        backbone = stgcn.STGCN(graph_cfg=dict(layout=layout, mode="stgcn_spatial"),
                               in_channels=channels)
    elif arch == "stgcn++":  # PYSKL configs/stgcn++/stgcn++_ntu60_xsub_hrnet
        backbone = stgcn.STGCN(graph_cfg=dict(layout=layout, mode="spatial"), in_channels=channels,
                               gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn")
    else:  # PYSKL configs/ctrgcn/ctrgcn_pyskl_ntu60_xsub_3dkp
        backbone = ctrgcn.CTRGCN(graph_cfg=dict(layout=layout, mode="spatial"),
                                 in_channels=channels, num_person=NUM_PERSON)
    return PysklRecognizer(backbone, NUM_CLASSES)


def posrec_model(arch: str, reference: nn.Module) -> nn.Module:
    _, layout, _, channels = SETTINGS[arch]
    model = build_model(arch, NUM_CLASSES, layout, in_channels=channels, num_person=NUM_PERSON)
    load_pyskl_checkpoint(reference.state_dict(), model)
    return model


def check_same_function(ref: nn.Module, ours: nn.Module, x: torch.Tensor) -> float:
    """Largest logit difference in eval mode, relative to the largest logit; must be tiny."""
    ref.eval(), ours.eval()
    with torch.no_grad():
        a, b = ref(x), ours(x)
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


# --------------------------------------------------------------------------------------------
# Timing


def _train_rate(model, opt, x, y, iters) -> float:
    model.train()
    t = time.perf_counter()
    for _ in range(iters):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return iters * len(x) / (time.perf_counter() - t)


@torch.no_grad()
def _infer_rate(model, x, iters) -> float:
    model.eval()
    t = time.perf_counter()
    for _ in range(iters):
        model(x)
    return iters * len(x) / (time.perf_counter() - t)


def bench(arch: str, modules, threads: int, batch: int, repeats: int, iters: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ref = pyskl_model(arch, modules)
    ours = posrec_model(arch, ref)
    _, _, joints, channels = SETTINGS[arch]
    x = torch.randn(batch, NUM_PERSON, CLIP_LEN, joints, channels)
    y = torch.randint(0, NUM_CLASSES, (batch,))
    rel = check_same_function(ref, ours, x[:2])
    if rel > 1e-4:
        sys.exit(f"error: {arch}: posrec and PYSKL logits differ by {rel:.2e} (relative)")
    models = {"pyskl": ref, "posrec": ours}
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
            for k, m in models.items()}
    for k, m in models.items():  # warm-up: allocator, oneDNN primitive caches
        _train_rate(m, opts[k], x, y, 1)
        _infer_rate(m, x, 1)
    train = {k: [] for k in models}
    infer = {k: [] for k in models}
    for r in range(repeats):
        order = list(models) if r % 2 == 0 else list(models)[::-1]  # no side always goes first
        for k in order:
            train[k].append(_train_rate(models[k], opts[k], x, y, iters))
            infer[k].append(_infer_rate(models[k], x, iters))
    row = {"arch": arch, "threads": threads, "batch": batch, "max_rel_diff": rel}
    for k, m in models.items():
        row[f"{k}_params"] = sum(p.numel() for p in m.parameters())
        row[f"{k}_train"] = statistics.median(train[k])
        row[f"{k}_infer"] = statistics.median(infer[k])
    return row


def print_table(rows: list[dict]) -> None:
    head = (f"{'model':8s} {'thr':>3s} {'params':>10s} | {'train samples/s':>26s} | "
            f"{'inference clips/s':>26s}")
    sub = (f"{'':8s} {'':>3s} {'(both)':>10s} | {'PYSKL':>8s} {'posrec':>8s} {'ratio':>8s} | "
           f"{'PYSKL':>8s} {'posrec':>8s} {'ratio':>8s}")
    print(head)
    print(sub)
    print("-" * len(sub))
    for r in rows:
        same = r["pyskl_params"] == r["posrec_params"]
        params = f"{r['posrec_params']:,}" if same else f"{r['pyskl_params']}!={r['posrec_params']}"
        print(f"{r['arch']:8s} {r['threads']:3d} {params:>10s} | "
              f"{r['pyskl_train']:8.1f} {r['posrec_train']:8.1f} "
              f"{r['posrec_train'] / r['pyskl_train']:7.2f}x | "
              f"{r['pyskl_infer']:8.1f} {r['posrec_infer']:8.1f} "
              f"{r['posrec_infer'] / r['pyskl_infer']:7.2f}x")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pyskl", type=Path, required=True, help="a checkout of kennymckormick/pyskl")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--iters", type=int, default=2, help="steps per timed repetition")
    p.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = p.parse_args(argv)
    modules = import_pyskl(args.pyskl)
    print(f"torch {torch.__version__}, input (N={args.batch}, M={NUM_PERSON}, T={CLIP_LEN}, V, C), "
          f"{args.repeats} repetitions x {args.iters} steps, medians\n", flush=True)
    rows = [bench(a, modules, t, args.batch, args.repeats, args.iters)
            for t in args.threads for a in args.models]
    print_table(rows)


if __name__ == "__main__":
    main()
