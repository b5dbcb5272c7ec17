"""ST-GCN (Yan et al. 2018) and ST-GCN++ (Duan et al. 2022) as one model with flags, as in PYSKL.

ST-GCN:   ``STGCN(..., graph_mode="stgcn_spatial")`` (gcn_adaptive="importance", unit_tcn).
ST-GCN++: ``STGCN(..., gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn",
          graph_mode="spatial")``.

Module and parameter names follow PYSKL's backbone (``gcn``/``tcn``/``residual`` inside each
block, ``branches``/``transform`` inside mstcn), so a PYSKL or MMAction2 checkpoint loads with a
handful of prefix renames (posrec.models.pyskl_import).

Speed: activations are kept in ``torch.channels_last`` memory order, i.e. physically
(N, T, V, C), end to end. The input (N, M, T, V, C) already is in that order, 1x1 and temporal
convolutions run faster in it on CPU (oneDNN) and GPU (cuDNN), and the graph aggregation becomes a
single batched matmul over (V, K) with no permute copies.
"""

from __future__ import annotations

import torch
import torch.nn as nn

CL = torch.channels_last


def graph_aggregate(h: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Sum over subsets and source joints: ``out[n, c, t, w] = sum_kv h[n, k*C + c, t, v] A[k, v, w]``.

    Args:
        h: (N, K*C, T, V), any memory format (channels_last avoids a copy).
        A: (K, V, V) adjacency, ``A[k, src, dst]``.
    Returns:
        (N, C, T, V) in channels_last memory format.
    """
    n, kc, t, v = h.shape
    k = A.shape[0]
    c = kc // k
    # physically (n, t, v, k, c): per frame a (V*K, C) matrix, left-multiplied by A as (V, V*K)
    h = h.permute(0, 2, 3, 1).reshape(n * t, v * k, c)
    a = A.permute(2, 1, 0).reshape(1, v, v * k).expand(n * t, v, v * k)
    return torch.bmm(a, h).view(n, t, v, c).permute(0, 3, 1, 2)


class unit_gcn(nn.Module):  # noqa: N801 - PYSKL's name, kept for the checkpoint mapping
    """Spatial graph convolution: 1x1 conv to K*C_out channels, aggregation over the K subsets of
    A, BatchNorm, optional residual, ReLU. (N, C_in, T, V) -> (N, C_out, T, V).

    adaptive: None (fixed A), "importance" (A * PA, PA learned, ST-GCN), "offset" (A + PA),
    "init" (A itself learned, ST-GCN++).
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor,
                 adaptive: str | None = "importance", with_res: bool = False) -> None:
        super().__init__()
        if adaptive not in (None, "init", "offset", "importance"):
            raise ValueError(f"adaptive must be None, 'init', 'offset' or 'importance', not {adaptive!r}")
        self.adaptive = adaptive
        self.num_subsets = A.size(0)
        if adaptive == "init":
            self.A = nn.Parameter(A.clone())
        else:
            self.register_buffer("A", A.clone())
        if adaptive == "importance":
            self.PA = nn.Parameter(torch.ones_like(A))
        elif adaptive == "offset":
            self.PA = nn.Parameter(torch.empty_like(A).uniform_(-1e-6, 1e-6))
        self.conv = nn.Conv2d(in_channels, out_channels * self.num_subsets, 1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.down = None
        if with_res and in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        self.with_res = with_res

    def graph(self) -> torch.Tensor:
        """The effective adjacency (K, V, V)."""
        if self.adaptive == "importance":
            return self.A * self.PA
        if self.adaptive == "offset":
            return self.A + self.PA
        return self.A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(graph_aggregate(self.conv(x), self.graph()))
        if self.with_res:
            y = y + (x if self.down is None else self.down(x))
        return y.relu_()


class unit_tcn(nn.Module):  # noqa: N801
    """Temporal convolution (kernel_size x 1, stride over T) + BatchNorm (+ dropout)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1,
                 dilation: int = 1, norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), padding=(pad, 0),
                              stride=(stride, 1), dilation=(dilation, 1))
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.drop = nn.Dropout(dropout, inplace=True) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x)))


class mstcn(nn.Module):  # noqa: N801
    """Multi-scale temporal convolution of ST-GCN++: six branches (four dilated 3x1 convs with
    dilations 1-4, a 3x1 max-pool, a strided 1x1 conv) of C_out/6 channels each, concatenated,
    then BN-ReLU-1x1 conv, BN (+ dropout). Same module names and numbers as PYSKL's mstcn."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0,
                 dilations: tuple[int, ...] = (1, 2, 3, 4)) -> None:
        super().__init__()
        nb = len(dilations) + 2
        mid = out_channels // nb
        rem = out_channels - mid * (nb - 1)  # branch 0 takes the remainder
        branches = []
        for i, d in enumerate(dilations):
            c = rem if i == 0 else mid
            branches.append(nn.Sequential(
                nn.Conv2d(in_channels, c, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                unit_tcn(c, c, 3, stride=stride, dilation=d, norm=False)))
        branches.append(nn.Sequential(
            nn.Conv2d(in_channels, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0))))
        branches.append(nn.Conv2d(in_channels, mid, 1, stride=(stride, 1)))
        self.branches = nn.ModuleList(branches)
        self.transform = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
                                       nn.Conv2d(out_channels, out_channels, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout, inplace=True) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([b(x) for b in self.branches], 1)
        return self.drop(self.bn(self.transform(y)))


class STGCNBlock(nn.Module):
    """unit_gcn -> temporal unit (unit_tcn or mstcn) + residual -> ReLU. (N, C_in, T, V) ->
    (N, C_out, T / stride, V)."""

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, stride: int = 1,
                 residual: bool = True, gcn_adaptive: str | None = "importance",
                 gcn_with_res: bool = False, tcn_type: str = "unit_tcn",
                 tcn_dropout: float = 0.0) -> None:
        super().__init__()
        self.gcn = unit_gcn(in_channels, out_channels, A, gcn_adaptive, gcn_with_res)
        if tcn_type == "unit_tcn":
            self.tcn = unit_tcn(out_channels, out_channels, 9, stride=stride, dropout=tcn_dropout)
        elif tcn_type == "mstcn":
            self.tcn = mstcn(out_channels, out_channels, stride=stride, dropout=tcn_dropout)
        else:
            raise ValueError(f"tcn_type must be 'unit_tcn' or 'mstcn', not {tcn_type!r}")
        # residual: "none", "id" (identity) or "conv" (a strided 1x1 unit_tcn)
        self.res_mode = "none" if not residual else (
            "id" if in_channels == out_channels and stride == 1 else "conv")
        if self.res_mode == "conv":
            self.residual = unit_tcn(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        if self.res_mode == "id":
            y = y + x
        elif self.res_mode == "conv":
            y = y + self.residual(x)
        return y.relu_()


class GCNRecognizer(nn.Module):
    """What every GCN recognizer here shares: input BN, a stack of blocks, PYSKL's GCN head.

    Subclasses build ``self.data_bn``/``self.data_bn_type`` and ``self.blocks``, then call
    ``_init_head(channels, num_classes, dropout)``.
    """

    data_bn: nn.Module | None
    data_bn_type: str | None
    blocks: nn.ModuleList

    def _init_head(self, channels: int, num_classes: int, dropout: float) -> None:
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, M, T, V, C) -> backbone features (N*M, C', T', V), channels_last memory format."""
        x = input_bn(self.data_bn, self.data_bn_type, x)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[:2]
        return gcn_head(self.features(x), n, m, self.drop, self.fc)


class STGCN(GCNRecognizer):
    """ST-GCN / ST-GCN++ recognizer: data BN, ten blocks, GCN head.

    Input (N, M, T, V, C) float32: N clips, M persons, T frames, V joints, C channels.
    Output logits (N, num_classes).

    Blocks (base_channels=64): 64-64-64-64-128(T/2)-128-128-256(T/2)-256-256; the channels double
    at ``inflate_stages`` and T halves at ``down_stages`` (1-based block numbers). Head: mean over
    T and V, mean over the M persons, dropout, linear (PYSKL's GCNHead).

    Args:
        A: (K, V, V) adjacency (posrec.skeleton.Layout.adjacency).
        num_classes: number of classes.
        in_channels: C of the input.
        num_person: M; only used by ``data_bn_type="MVC"``.
        data_bn_type: "VC" (BatchNorm over V*C, PYSKL's STGCN default), "MVC" (over M*V*C) or
            None (no input BN).
        gcn_adaptive, gcn_with_res, tcn_type, tcn_dropout: see STGCNBlock; ST-GCN++ is
            gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn".
        dropout: dropout before the final linear layer.
    """

    def __init__(self, A: torch.Tensor, num_classes: int, in_channels: int = 3, num_person: int = 2,
                 base_channels: int = 64, ch_ratio: int = 2, num_stages: int = 10,
                 inflate_stages: tuple[int, ...] = (5, 8), down_stages: tuple[int, ...] = (5, 8),
                 data_bn_type: str | None = "VC", gcn_adaptive: str | None = "importance",
                 gcn_with_res: bool = False, tcn_type: str = "unit_tcn", tcn_dropout: float = 0.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        A = torch.as_tensor(A, dtype=torch.float32)
        v = A.size(1)
        self.data_bn_type = data_bn_type
        if data_bn_type == "MVC":
            self.data_bn = nn.BatchNorm1d(num_person * in_channels * v)
        elif data_bn_type == "VC":
            self.data_bn = nn.BatchNorm1d(in_channels * v)
        elif data_bn_type is None:
            self.data_bn = None
        else:
            raise ValueError(f"data_bn_type must be 'VC', 'MVC' or None, not {data_bn_type!r}")
        kw = dict(gcn_adaptive=gcn_adaptive, gcn_with_res=gcn_with_res, tcn_type=tcn_type)
        blocks = []
        if in_channels != base_channels:  # first block: no residual, no temporal dropout
            blocks.append(STGCNBlock(in_channels, base_channels, A, 1, residual=False, **kw))
        c_in, inflate = base_channels, 0
        for i in range(2, num_stages + 1):
            inflate += i in inflate_stages
            c_out = int(base_channels * ch_ratio ** inflate + 1e-4)
            blocks.append(STGCNBlock(c_in, c_out, A, 1 + (i in down_stages), tcn_dropout=tcn_dropout, **kw))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self._init_head(c_in, num_classes, dropout)


def input_bn(bn: nn.Module | None, bn_type: str | None, x: torch.Tensor) -> torch.Tensor:
    """Data BatchNorm of (N, M, T, V, C) input over V*C ("VC") or M*V*C ("MVC") features, per
    frame. Returns (N*M, C, T, V) in channels_last memory format (physically (N*M, T, V, C))."""
    n, m, t, v, c = x.shape
    if bn is None:
        y = x.reshape(n * m, t, v, c)
    elif bn_type == "VC":
        y = bn(x.reshape(n * m * t, v * c)).view(n * m, t, v, c)
    else:  # MVC: features (M, V, C) per (N, T)
        y = bn(x.permute(0, 2, 1, 3, 4).reshape(n * t, m * v * c))
        y = y.view(n, t, m, v, c).transpose(1, 2).reshape(n * m, t, v, c)
    return y.permute(0, 3, 1, 2)


def gcn_head(x: torch.Tensor, n: int, m: int, drop: nn.Module, fc: nn.Linear) -> torch.Tensor:
    """(N*M, C, T, V) features -> mean over T, V, then over the M persons -> dropout -> fc."""
    x = x.mean((2, 3)).view(n, m, -1).mean(1)
    return fc(drop(x))
