"""MoveNet (Google, Apache-2.0) in plain PyTorch: SinglePose Lightning/Thunder and MultiPose Lightning.

The network is a MobileNetV2 backbone, a small FPN down to stride 4 and CenterNet-style heads.
Weights come from the TF.js graph models (see ``tools/convert_movenet.py`` and
``posrec/weights/NOTICE``); the decoding below reproduces the graph's own post-processing op for
op, including the float16-rounded constants stored with the weights, so outputs match the
reference to float32 rounding.

Layouts: images go in as uint8-valued (N, H, W, 3) RGB; the permute to NCHW gives a
channels-last tensor for free, which is the fast path for PyTorch's CPU convolutions.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from posrec.errors import PosrecError
from posrec.io.atomic import file_sha256

# MobileNetV2 inverted-residual settings: (expansion, channels at width 1.0, repeats, stride).
_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
         (6, 160, 3, 2), (6, 320, 1, 1)]
# Block indices whose outputs feed the FPN (strides 4, 8, 16), as in the TF graph.
_FPN_TAPS = (2, 5, 9)
VARIANTS = {  # name -> (backbone width, input size or None for any multiple of 32, multipose)
    "lightning": (1.0, 192, False),
    "thunder": (1.75, 256, False),
    "multipose": (1.5, None, True),
}
SINGLE_HEADS = {"center": 1, "heatmap": 17, "regress": 34, "offset": 34}
MULTI_HEADS = {**SINGLE_HEADS, "box_scale": 2, "box_offset": 2}


def _divisible(v: float, divisor: int = 8) -> int:
    """Keras' channel rounding for width multipliers."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvAct(nn.Module):
    """Conv (+ folded BN bias) + optional ReLU/ReLU6 with TF 'SAME' padding.

    TF pads stride-2 convolutions on even inputs only at the bottom/right; PyTorch pads
    symmetrically, so those get an explicit one-sided pad.
    """

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = None, bias: bool = True):
        super().__init__()
        self.stride, self.k = stride, k
        pad = (k - 1) // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=bias)
        self.act = {"relu": nn.ReLU(), "relu6": nn.ReLU6(), None: nn.Identity()}[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            h, w = x.shape[-2:]
            pad_h = max((-(-h // 2) - 1) * 2 + self.k - h, 0)
            pad_w = max((-(-w // 2) - 1) * 2 + self.k - w, 0)
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return self.act(self.conv(x))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.expand = ConvAct(cin, hidden, 1, act="relu6") if expansion != 1 else nn.Identity()
        self.dw = ConvAct(hidden, hidden, 3, stride, groups=hidden, act="relu6")
        self.project = ConvAct(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """Backbone; ``forward`` returns the features at strides 4, 8, 16 and 32."""

    def __init__(self, width: float):
        super().__init__()
        cin = _divisible(32 * width)
        self.stem = ConvAct(3, cin, 3, 2, act="relu6")
        blocks = []
        for t, c, n, s in _MBV2:
            cout = _divisible(c * width)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.last = ConvAct(cin, 1280, 1, act="relu6")
        self.tap_channels = [blocks[i].project.conv.out_channels for i in _FPN_TAPS] + [1280]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in _FPN_TAPS:
                taps.append(x)
        taps.append(self.last(x))
        return taps


class SeparableConv(nn.Module):
    """Depthwise 3x3 (no bias) then pointwise 1x1 + bias + ReLU, as Keras' SeparableConv2D."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.dw = ConvAct(cin, cin, 3, groups=cin, bias=False)
        self.pw = ConvAct(cin, cout, 1, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class FPN(nn.Module):
    """Top-down path: stride 32 -> 4 with 1x1 laterals, x2 bilinear upsampling and separable convs."""

    def __init__(self, tap_channels: list[int], widths=(64, 64, 32, 24), out: int = 24):
        super().__init__()
        # lateral[0] is the stride-32 input; then strides 16, 8, 4.
        self.lateral = nn.ModuleList(ConvAct(c, w, 1) for c, w in zip(tap_channels[::-1], widths))
        outs = list(widths[2:]) + [out]
        self.smooth = nn.ModuleList(SeparableConv(w, o) for w, o in zip(widths[1:], outs))

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        taps = taps[::-1]
        x = self.lateral[0](taps[0])
        for lateral, smooth, tap in zip(self.lateral[1:], self.smooth, taps[1:]):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = smooth(x + lateral(tap))
        return x


class Head(nn.Sequential):
    def __init__(self, cin: int, cout: int, hidden: int = 96):
        super().__init__(SeparableConv(cin, hidden), ConvAct(hidden, cout, 1))


class MoveNet(nn.Module):
    """MoveNet network plus the reference decoding.

    Args:
        variant: ``"lightning"`` (192 px), ``"thunder"`` (256 px) or ``"multipose"`` (any
            H, W that are multiples of 32; 256 on the long side is what it was trained for).

    Input: float or uint8 tensor (N, H, W, 3), RGB values in 0..255, already resized/padded to
    the model's input size.

    Output:
        single-pose: float32 (N, 1, 17, 3): (y, x, score) per COCO-17 keypoint, y and x
            normalised to the input (0..1).
        multipose: float32 (N, max_people, 56): 17 x (y, x, score), then the person box
            (ymin, xmin, ymax, xmax) normalised to the input, then the person score.
    """

    def __init__(self, variant: str = "lightning", max_people: int = 6):
        super().__init__()
        self.max_people = max_people  # multipose: people decoded per image (the reference: 6)
        if variant not in VARIANTS:
            raise ValueError(f"unknown MoveNet variant {variant!r}; choose from {sorted(VARIANTS)}")
        self.variant = variant
        width, self.input_size, self.multipose = VARIANTS[variant]
        self.backbone = MobileNetV2(width)
        self.fpn = FPN(self.backbone.tap_channels)
        heads = MULTI_HEADS if self.multipose else SINGLE_HEADS
        self.heads = nn.ModuleDict({name: Head(24, c) for name, c in heads.items()})
        # Constants of the TF graph (float16-rounded there): loaded with the weights so the
        # decoding reproduces the reference exactly.
        self.register_buffer("pixel_scale", torch.tensor(1 / 127.5))
        if self.multipose:
            self.register_buffer("peak_eps", torch.tensor(1e-6))
            self.register_buffer("kpt_sigma_factor", torch.tensor(0.3))
            self.register_buffer("kpt_score_threshold", torch.tensor(0.127))
        else:
            size = self.input_size // 4
            self.register_buffer("center_weight", torch.ones(size, size))
            self.register_buffer("dist_eps", torch.tensor(1.8))
            self.register_buffer("output_scale", torch.tensor(1 / size))

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs (N, C, H/4, W/4) before any sigmoid."""
        x = images.permute(0, 3, 1, 2).float()  # NHWC storage = channels-last NCHW, no copy
        x = x * self.pixel_scale - 1.0
        x = self.fpn(self.backbone(x))
        return {name: head(x) for name, head in self.heads.items()}

    def forward(self, images: torch.Tensor, max_people: int | None = None) -> torch.Tensor:
        """``max_people``: multipose people per image (default ``self.max_people``)."""
        return self.decode(self.features(images), max_people)

    def decode(self, out: dict[str, torch.Tensor], max_people: int | None = None) -> torch.Tensor:
        """Head outputs (from :meth:`features`, or the same network run elsewhere) -> the
        reference outputs described in the class docstring."""
        if not self.multipose:
            return self._decode_single(out)
        return self._decode_multi(out, max_people or self.max_people)

    def _decode_single(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        n, _, h, w = out["heatmap"].shape
        heat = torch.sigmoid(out["heatmap"])  # (N, 17, h, w)
        center = torch.sigmoid(out["center"][:, 0]) * self.center_weight  # favours the middle
        idx = center.flatten(1).argmax(1)  # (N,)
        cy, cx = idx // w, idx % w
        batch = torch.arange(n, device=idx.device)
        reg = out["regress"][batch, :, cy, cx].view(n, 17, 2)  # (N, 17, [dy, dx])
        ry = cy[:, None].float() + reg[..., 0]
        rx = cx[:, None].float() + reg[..., 1]
        gy = torch.arange(h, device=heat.device, dtype=heat.dtype).view(1, 1, h, 1)
        gx = torch.arange(w, device=heat.device, dtype=heat.dtype).view(1, 1, 1, w)
        dist = torch.sqrt((gy - ry[..., None, None]) ** 2 + (gx - rx[..., None, None]) ** 2)
        kidx = (heat / (dist + self.dist_eps)).flatten(2).argmax(2)  # (N, 17)
        ky, kx = kidx // w, kidx % w
        joint = torch.arange(17, device=heat.device)
        b = batch[:, None]
        offset = out["offset"].view(n, 17, 2, h, w)[b, joint, :, ky, kx]  # (N, 17, 2)
        score = heat[b, joint, ky, kx]
        y = (ky.float() + offset[..., 0]) * self.output_scale
        x = (kx.float() + offset[..., 1]) * self.output_scale
        return torch.stack([y, x, score], -1)[:, None]

    def _decode_multi(self, out: dict[str, torch.Tensor], max_people: int = 6) -> torch.Tensor:
        n, _, h, w = out["heatmap"].shape
        dev, dt = out["heatmap"].device, out["heatmap"].dtype
        center = torch.sigmoid(out["center"][:, 0])  # (N, h, w)
        peak = F.max_pool2d(center[:, None], 5, 1, 2)[:, 0]
        center = center * ((center - peak).abs() < self.peak_eps)
        center_score, idx = center.flatten(1).topk(max_people, 1)  # (N, P)
        cy, cx = idx // w, idx % w
        b = torch.arange(n, device=dev)[:, None]
        # Person boxes around each centre, in feature-map cells, clipped to the map.
        scale = out["box_scale"][b, :, cy, cx].clamp(min=0)  # (N, P, [h, w])
        boff = out["box_offset"][b, :, cy, cx]  # (N, P, [dy, dx])
        by, bx = cy.to(dt) + boff[..., 0], cx.to(dt) + boff[..., 1]
        ymin = (by - scale[..., 0] * 0.5).clamp(0, h)
        xmin = (bx - scale[..., 1] * 0.5).clamp(0, w)
        ymax = (by + scale[..., 0] * 0.5).clamp(0, h)
        xmax = (bx + scale[..., 1] * 0.5).clamp(0, w)
        box = torch.stack([ymin / h, xmin / w, ymax / h, xmax / w], -1)  # (N, P, 4)
        # Regressed joints of each person, then the heatmap peak nearest to each.
        reg = out["regress"][b, :, cy, cx].view(n, max_people, 17, 2)
        ry = cy[..., None].to(dt) + reg[..., 0]  # (N, P, 17)
        rx = cx[..., None].to(dt) + reg[..., 1]
        # Each joint's heatmap, weighted by a Gaussian around its regressed position and masked
        # to its person's box. Both factor into a row and a column term, exp(-(dy²+dx²)/s) =
        # exp(-dy²/s) exp(-dx²/s), so the exponentials cost h + w, not h * w, per joint.
        gy = torch.arange(h, device=dev, dtype=dt).view(1, h, 1, 1, 1)
        gx = torch.arange(w, device=dev, dtype=dt).view(1, 1, w, 1, 1)
        sigma = self.kpt_sigma_factor * min(h, w)
        in_rows = (gy >= ymin[:, None, None, :, None]) & (gy < ymax[:, None, None, :, None])
        in_cols = (gx >= xmin[:, None, None, :, None]) & (gx < xmax[:, None, None, :, None])
        rows = torch.exp(-(gy - ry[:, None, None]) ** 2 / sigma) * in_rows  # (N, h, 1, P, 17)
        cols = torch.exp(-(gx - rx[:, None, None]) ** 2 / sigma) * in_cols  # (N, 1, w, P, 17)
        heat = torch.sigmoid(out["heatmap"]).permute(0, 2, 3, 1)[:, :, :, None]  # (N,h,w,1,17)
        weighted = heat * rows * cols  # (N, h, w, P, 17)
        kidx = weighted.flatten(1, 2).argmax(1)  # (N, P, 17) over h*w
        ky, kx = kidx // w, kidx % w
        joint = torch.arange(17, device=dev)
        bb = b[..., None]
        offset = out["offset"].view(n, 17, 2, h, w)[bb, joint, :, ky, kx]  # (N, P, 17, 2)
        # The reference scores a joint by the best person's weighted heatmap at that cell.
        best = weighted.amax(3)  # (N, h, w, 17)
        score = best[bb, ky, kx, joint]  # (N, P, 17)
        y = (ky.to(dt) + offset[..., 0]) / h
        x = (kx.to(dt) + offset[..., 1]) / w
        kpts = torch.stack([y, x, score], -1).flatten(2)  # (N, P, 51)
        good = score > self.kpt_score_threshold
        mean_good = (score * good).sum(-1) / good.sum(-1).clamp(min=1)
        person = center_score * mean_good
        return torch.cat([kpts, box, person[..., None]], -1)


def _notice_sha256() -> dict[str, str]:
    """File name -> sha256 hex, from the ``sha256`` section of ``posrec/weights/NOTICE``."""
    from posrec.paths import WEIGHTS_DIR

    lines = (WEIGHTS_DIR / "NOTICE").read_text(encoding="utf-8").splitlines()
    pairs = (line.split() for line in lines)
    return {p[1]: p[0] for p in pairs if len(p) == 2 and len(p[0]) == 64
            and all(c in "0123456789abcdef" for c in p[0])}


def verify_weights(path: Path, name: str) -> None:
    """Refuse a weight file whose sha256 differs from the one NOTICE lists for ``name``.

    Raises :class:`PosrecError` (one line) for a missing, truncated or altered file.
    """
    expected = _notice_sha256().get(name)
    if expected is None:
        raise PosrecError(f"no sha256 for {name} in posrec/weights/NOTICE")
    try:
        got = file_sha256(path)
    except OSError as err:
        raise PosrecError(f"MoveNet weights {path} cannot be read ({err.strerror or err})") from None
    if got != expected:
        raise PosrecError(f"MoveNet weights {path} are corrupt or not the shipped {name} "
                          f"(sha256 {got[:12]}..., expected {expected[:12]}...): reinstall posrec")


def load_movenet(variant: str = "lightning", path: str | Path | None = None,
                 max_people: int = 6) -> MoveNet:
    """The shipped, frozen MoveNet: eval mode, no gradients, float32 weights.

    Args:
        variant: "lightning", "thunder" or "multipose".
        path: the weight file (default: the one shipped in ``posrec/weights``); it must have the
            sha256 that ``posrec/weights/NOTICE`` lists for the variant, else PosrecError.
        max_people: multipose only, people decoded per image.
    """
    from safetensors.torch import load_file

    from posrec.paths import WEIGHTS_DIR

    name = f"movenet_{variant}.safetensors"
    path = Path(path) if path is not None else WEIGHTS_DIR / name
    model = MoveNet(variant, max_people=max_people)
    verify_weights(path, name)
    state = load_file(str(path))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval().requires_grad_(False)
    return model
