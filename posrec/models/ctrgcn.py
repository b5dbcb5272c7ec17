"""CTR-GCN (Chen et al., ICCV 2021, "Channel-wise Topology Refinement Graph Convolution") as in
PYSKL's CTRGCN backbone: same blocks, parameter names, numbers and initialisation.

Exact rewrites make it cheaper than a literal transcription, with the parameters left in PYSKL's
per-subset modules (so PYSKL checkpoints load by key renames):

* the relation convolutions conv1/conv2 of CTR-GC run after the temporal mean (a 1x1 conv
  commutes with a mean over T), all subsets' at once;
* alpha scales conv4's weights rather than its (N, C, V, V) output, and A rides in its bias;
* conv3 is a batched matrix product reading channels_last input as it lies and writing the
  (N, C, T, V) order that the per-channel topology products need, so nothing is permuted;
* activations are channels_last (physically (N, T, V, C)) everywhere else, where the 1x1 and
  temporal convolutions, max-pooling and BatchNorm run fastest.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from posrec.models.stgcn import GCNRecognizer, unit_tcn


def _conv_init(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    nn.init.zeros_(conv.bias)


def _bn_init(bn: nn.BatchNorm2d, scale: float) -> None:
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


class CTRGC(nn.Module):
    """Channel-wise topology refinement graph convolution, for one subset of A.

    conv1, conv2 (C_in -> R): joint features averaged over T, whose pairwise differences (tanh)
    give a (R, V, V) relation, lifted by conv4 (R -> C_out) to one topology per channel that
    refines A; conv3 (C_in -> C_out) transforms the features the topology aggregates.
    The computation happens in unit_ctrgcn, for all subsets at once.
    """

    def __init__(self, in_channels: int, out_channels: int, rel_reduction: int = 8) -> None:
        super().__init__()
        self.rel_channels = 8 if in_channels <= 16 else in_channels // rel_reduction
        self.conv1 = nn.Conv2d(in_channels, self.rel_channels, 1)
        self.conv2 = nn.Conv2d(in_channels, self.rel_channels, 1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv4 = nn.Conv2d(self.rel_channels, out_channels, 1)
        for m in (self.conv1, self.conv2, self.conv3, self.conv4):
            _conv_init(m)


class unit_ctrgcn(nn.Module):  # noqa: N801 - PYSKL's name, kept for the checkpoint mapping
    """CTR-GC over the K subsets of A, summed, BatchNorm, residual, ReLU.
    (N, C_in, T, V) -> (N, C_out, T, V)."""

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor) -> None:
        super().__init__()
        self.num_subset = A.shape[0]
        self.out_channels = out_channels
        self.convs = nn.ModuleList(CTRGC(in_channels, out_channels) for _ in range(self.num_subset))
        self.down = None
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
            _conv_init(self.down[0])
            _bn_init(self.down[1], 1)
        self.A = nn.Parameter(A.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(out_channels)
        _bn_init(self.bn, 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, cin, t, v = x.shape
        c, convs = self.out_channels, self.convs
        r = convs[0].rel_channels
        # relation features of all subsets from the temporal mean: (N, K*2R, 1, V)
        w12 = torch.cat([w for m in convs for w in (m.conv1.weight, m.conv2.weight)])
        b12 = torch.cat([b for m in convs for b in (m.conv1.bias, m.conv2.bias)])
        q = F.conv2d(x.mean(2, keepdim=True), w12, b12).reshape(n, self.num_subset, 2, r, v)
        rel = torch.tanh(q[:, :, 0, :, :, None] - q[:, :, 1, :, None, :])  # (N, K, R, U, W)
        # x as per-clip (C_in, T*V) matrices: a view of channels_last x, physically (N, T, V, C_in)
        xm = x.permute(0, 2, 3, 1).reshape(n, t * v, cin).transpose(1, 2)
        y = None
        for i, m in enumerate(convs):
            # channel-wise topology alpha * conv4(rel) + A[i], (N*C, U, W); alpha scales conv4's
            # weights instead of its output
            w4 = (m.conv4.weight.view(1, c, r) * self.alpha).expand(n, c, r)
            b4 = (m.conv4.bias * self.alpha)[:, None] + self.A[i].view(1, v * v)
            topo = torch.baddbmm(b4[None], w4, rel[:, i].reshape(n, r, v * v)).view(n * c, v, v)
            # conv3 as a batched product whose output is (N, C, T, V) in memory, as the
            # per-channel products out[n, c] = x3[n, c] (T, U) @ topo[n, c] (U, W) need
            w3 = m.conv3.weight.view(1, c, cin).expand(n, c, cin)
            x3 = torch.baddbmm(m.conv3.bias[None, :, None], w3, xm).view(n * c, t, v)
            y = torch.bmm(x3, topo) if y is None else torch.baddbmm(y, x3, topo)
        y = self.bn(y.view(n, c, t, v).contiguous(memory_format=torch.channels_last))
        res = x if self.down is None else self.down(x)
        return (res + y).relu_()


class MSTCN(nn.Module):
    """CTR-GCN's multi-scale temporal convolution (PYSKL's msg3d_utils.MSTCN, residual=False):
    branches of dilated kernel_size x 1 convs, a 3x1 max-pool and a strided 1x1 conv, each
    C_out/4 channels (the 1x1 branch takes the remainder), concatenated, ReLU (+ dropout)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 1,
                 dilations: tuple[int, ...] = (1, 2), dropout: float = 0.0) -> None:
        super().__init__()
        nb = len(dilations) + 2
        bc = out_channels // nb
        rem = out_channels - bc * (nb - 1)
        branches = [nn.Sequential(
            nn.Conv2d(in_channels, bc, 1), nn.BatchNorm2d(bc), nn.ReLU(inplace=True),
            unit_tcn(bc, bc, kernel_size, stride=stride, dilation=d)) for d in dilations]
        branches.append(nn.Sequential(
            nn.Conv2d(in_channels, bc, 1), nn.BatchNorm2d(bc), nn.ReLU(inplace=True),
            nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)), nn.BatchNorm2d(bc)))
        branches.append(nn.Sequential(
            nn.Conv2d(in_channels, rem, 1, stride=(stride, 1)), nn.BatchNorm2d(rem)))
        self.branches = nn.ModuleList(branches)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                _bn_init(m, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.cat([b(x) for b in self.branches], 1).relu_())


class CTRGCNBlock(nn.Module):
    """unit_ctrgcn -> MSTCN, + residual, ReLU. (N, C_in, T, V) -> (N, C_out, T / stride, V)."""

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, stride: int = 1,
                 residual: bool = True, kernel_size: int = 5, dilations: tuple[int, ...] = (1, 2),
                 tcn_dropout: float = 0.0) -> None:
        super().__init__()
        self.gcn1 = unit_ctrgcn(in_channels, out_channels, A)
        self.tcn1 = MSTCN(out_channels, out_channels, kernel_size, stride, dilations, tcn_dropout)
        self.res_mode = "none" if not residual else (
            "id" if in_channels == out_channels and stride == 1 else "conv")
        if self.res_mode == "conv":  # default PyTorch init, as in PYSKL
            self.residual = unit_tcn(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn1(self.gcn1(x))  # already >= 0 (MSTCN ends with ReLU)
        if self.res_mode == "none":
            return y
        return (y + (x if self.res_mode == "id" else self.residual(x))).relu_()


class CTRGCN(GCNRecognizer):
    """CTR-GCN recognizer: data BN over M*V*C, ten CTR-GCN blocks, GCN head.

    Input (N, M, T, V, C) float32 -> logits (N, num_classes). Blocks (base_channels=64):
    64-64-64-64-128(T/2)-128-128-256(T/2)-256-256. Head as in STGCN: mean over T and V, mean
    over persons, dropout, linear.

    Args:
        A: (K, V, V) adjacency, ``Layout.adjacency("spatial")``.
        num_classes, in_channels, num_person: as for STGCN (num_person sizes the data BN).
        kernel_size, dilations: the temporal branches of MSTCN.
        tcn_dropout: dropout after MSTCN (not in the first block).
        dropout: dropout before the final linear layer.
    """

    def __init__(self, A: torch.Tensor, num_classes: int, in_channels: int = 3, num_person: int = 2,
                 base_channels: int = 64, num_stages: int = 10,
                 inflate_stages: tuple[int, ...] = (5, 8), down_stages: tuple[int, ...] = (5, 8),
                 kernel_size: int = 5, dilations: tuple[int, ...] = (1, 2), tcn_dropout: float = 0.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        A = torch.as_tensor(A, dtype=torch.float32)
        self.data_bn_type = "MVC"
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * A.size(1))
        kw = dict(kernel_size=kernel_size, dilations=tuple(dilations))
        blocks = [CTRGCNBlock(in_channels, base_channels, A, residual=False, **kw)]
        c_in = base_channels
        for i in range(2, num_stages + 1):
            c_out = c_in * (1 + (i in inflate_stages))
            blocks.append(CTRGCNBlock(c_in, c_out, A, 1 + (i in down_stages), tcn_dropout=tcn_dropout, **kw))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self._init_head(c_in, num_classes, dropout)
