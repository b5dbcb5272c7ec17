"""GCN action recognizers: ST-GCN, ST-GCN++ (ST-GCN with flags) and CTR-GCN.

Every model maps skeleton input (N, M, T, V, C) float32 to logits (N, num_classes).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from posrec.errors import PosrecError
from posrec.models.ctrgcn import CTRGCN
from posrec.models.pyskl_import import load_pyskl_checkpoint
from posrec.models.stgcn import STGCN
from posrec.skeleton import get_layout

# The architectures: each arch's class and the flags that make it what PYSKL's configs build
# (ST-GCN++ = ST-GCN + these flags). Adding an architecture is one entry here.
_ARCH_CLASSES: dict[str, tuple[type, dict]] = {
    "stgcn": (STGCN, dict(graph_mode="stgcn_spatial")),
    "stgcn++": (STGCN, dict(graph_mode="spatial", gcn_adaptive="init", gcn_with_res=True,
                            tcn_type="mstcn")),
    "ctrgcn": (CTRGCN, dict(graph_mode="spatial")),
}
ARCHS = tuple(_ARCH_CLASSES)  # the one list of architecture names (configs check against it)


def build_model(arch: str, num_classes: int, layout: str, in_channels: int = 3,
                num_person: int = 2, **flags) -> nn.Module:
    """Build a recognizer.

    Args:
        arch: "stgcn", "stgcn++" or "ctrgcn".
        num_classes: number of action classes.
        layout: skeleton layout name (posrec.skeleton.LAYOUTS): sets V and the graph.
        in_channels: C of the input: 2 (x, y), 3 (x, y, score or x, y, z), ...
        num_person: M, the persons per clip (used by the M*V*C input BatchNorm).
        **flags: constructor options of the model class: for ST-GCN/ST-GCN++ those of
            posrec.models.stgcn.STGCN (gcn_adaptive, gcn_with_res, tcn_type, tcn_dropout,
            data_bn_type, dropout, base_channels, ...), for CTR-GCN those of
            posrec.models.ctrgcn.CTRGCN; plus graph_mode ("spatial" or "stgcn_spatial", the
            adjacency partition; default: PYSKL's choice for the arch).

    Returns:
        an nn.Module whose forward maps (N, M, T, V, C) float32 to logits (N, num_classes),
        with parameter names that PYSKL/MMAction2 checkpoints map onto
        (posrec.models.pyskl_import.load_pyskl_checkpoint).

    Raises:
        PosrecError for an unknown arch, layout or flag, or a bad flag value.
    """
    if arch not in _ARCH_CLASSES:
        raise PosrecError(f"unknown model arch {arch!r}; choose one of {', '.join(ARCHS)}")
    lay = get_layout(layout)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise PosrecError(f"num_classes must be a positive integer, not {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise PosrecError(f"in_channels must be a positive integer, not {in_channels!r}")
    cls, preset = _ARCH_CLASSES[arch]
    opts = {**preset, **flags}
    graph_mode = opts.pop("graph_mode")
    allowed = set(inspect.signature(cls).parameters) - {"A", "num_classes", "in_channels", "num_person"}
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise PosrecError(f"unknown flag(s) for {arch}: {', '.join(unknown)}; "
                          f"allowed: graph_mode, {', '.join(sorted(allowed))}")
    A = torch.from_numpy(lay.adjacency(graph_mode))
    try:
        return cls(A, num_classes, in_channels=in_channels, num_person=num_person, **opts)
    except (ValueError, TypeError) as e:
        raise PosrecError(f"bad flag for {arch}: {e}") from None


__all__ = ["ARCHS", "CTRGCN", "STGCN", "build_model", "load_pyskl_checkpoint"]
