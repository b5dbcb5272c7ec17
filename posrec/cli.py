"""The ``posrec`` command: parses arguments and calls the modules; no logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from posrec import __version__
from posrec.errors import PosrecError
from posrec.estimate.types import BACKENDS, ESTIMATORS



def _threads(n: int | None) -> None:
    from posrec.estimate.stream import check_positive

    check_positive("--threads", n)
    if n:
        import torch

        torch.set_num_threads(n)


def _estimator_factory(args):
    from posrec.estimate.estimators import load_estimator
    from posrec.estimate.stream import check_device

    check_device(args.device)

    def make(video: bool):
        # photos have no previous frame to follow a person from: multipose-follow is MultiPose there
        name = "multipose" if args.model == "multipose-follow" and not video else args.model
        return load_estimator(name, follow_person=video, device=args.device, backend=args.backend)
    return make


def cmd_pose(args) -> None:
    from posrec.pose import run_pose

    _threads(args.threads)
    if args.camera is None and not args.paths:
        raise PosrecError("give an image, video or folder, or --camera N")
    written = run_pose([Path(p) for p in args.paths], Path(args.out), _estimator_factory(args),
                       camera=args.camera, show=args.show, batch=args.batch,
                       size=args.overlay_size, write_video_overlay=not args.no_video)
    for p in written:
        print(p)


def cmd_extract(args) -> int:
    from posrec.estimate.estimators import load_estimator
    from posrec.estimate.stream import check_device
    from posrec.extract import extract

    _threads(args.threads)
    model = args.model or "multipose"
    estimator = load_estimator(model, follow_person=True, device=check_device(args.device),
                               backend=args.backend)
    ds = extract([Path(p) for p in args.inputs], Path(args.out), estimator,
                 labels_from_dirs=args.labels_from_dirs, shard=args.shard, batch=args.batch,
                 max_people=args.max_people)
    print(f"{len(ds['annotations'])} clips -> {args.out}")
    for line in ds.get("failed", []):
        print(f"posrec: failed: {line}", file=sys.stderr)
    return 1 if ds.get("failed") else 0  # 1: written, but some clips could not be decoded


def cmd_label(args) -> int:
    from posrec.action_model import load_action_model
    from posrec.estimate.stream import check_device
    from posrec.label import default_out_dir, label_video
    from posrec.label_tree import label_tree
    from posrec.timeline import summarize

    _threads(args.threads)
    check_device(args.device)
    if args.camera is None and len(args.paths) != 1:
        raise PosrecError("give one video or folder, or --camera N")
    every = args.every if args.every == "auto" else _positive_int("--every", args.every)
    opts = dict(model=load_action_model(args.model, backend=args.backend),
                estimator=_label_estimator(args), window=args.window,
                stride=args.stride, threshold=args.threshold, every=every, batch=args.batch,
                write_video=not args.no_video, overlay_size=args.overlay_size)
    if args.camera is not None:
        out = Path(args.out) if args.out else default_out_dir(args.camera)
        res = label_video(args.camera, out_dir=out, show=True, rolling=True, **opts)
        print(summarize(res.timeline, res.duration))
        return 0
    path = Path(args.paths[0])
    if path.is_dir():
        if args.show:
            raise PosrecError("--show labels one video at a time; give a video, not a folder")
        tree = label_tree(path, Path(args.out or "label_out"), shard=args.shard, **opts)
        print(f"{len(tree.done)} labelled, {len(tree.skipped)} already done, "
              f"{len(tree.failed)} failed -> {tree.summary}")
        for line in tree.failed:
            print(f"posrec: failed: {line}", file=sys.stderr)
        return 1 if tree.failed else 0
    out = Path(args.out) if args.out else default_out_dir(path)
    res = label_video(path, out_dir=out, show=args.show, **opts)
    print(summarize(res.timeline, res.duration))
    print(f"-> {out}/ ({', '.join(p.name for p in res.files)})")
    return 0


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise PosrecError(f"{name} must be a positive integer or 'auto', got {text!r}") from None
    if value < 1:
        raise PosrecError(f"{name} must be a positive integer or 'auto', got {text!r}")
    return value


def _label_estimator(args):
    from posrec.estimate.estimators import load_estimator

    return load_estimator(args.estimator, follow_person=args.estimator in ("lightning", "thunder"),
                          device=args.device, backend=args.backend)


def cmd_models(args) -> None:
    from posrec.action_model import DEFAULT_MODEL, shipped_models

    for name, card in shipped_models().items():
        spec = card["pipeline"]
        acc = card.get("accuracy", {})
        figures = ", ".join(f"{split} {v['clean']['top1']:.1%}" for split, v in acc.items()
                            if split.startswith("test") and "clean" in v)
        print(f"{name}{' (default)' if name == DEFAULT_MODEL else ''}: {card['num_classes']} "
              f"classes, {spec['layout']}, {card['window_seconds']:g} s windows at "
              f"{spec['fps']:g} fps, threshold {card['threshold']:g}; test top-1 {figures}")
        print("    " + ", ".join(card["class_names"]))
    print("--model also takes a posrec checkpoint (runs/<run>/best.pt) or a PYSKL/MMAction2 "
          "GCN checkpoint (pyskl:FILE.pth, COCO-17 joints)")


def cmd_data_merge(args) -> None:
    from posrec.io.pickle import merge_datasets

    ds = merge_datasets([Path(p) for p in args.parts], Path(args.out))
    print(f"{len(ds['annotations'])} clips from {len(args.parts)} files -> {args.out}")


def cmd_data_split(args) -> None:
    from posrec.io.datasets import dataset_info, format_dataset_info
    from posrec.io.pickle import load_dataset, save_dataset
    from posrec.splits import make_splits

    ds = make_splits(load_dataset(Path(args.file)), args.source, args.val, args.test, args.seed)
    save_dataset(ds, Path(args.out), inputs=[args.file])
    print(format_dataset_info(dataset_info(ds)))
    print(f"-> {args.out}")


def cmd_data_convert(args) -> None:
    from posrec.io.datasets import convert, dataset_info, format_dataset_info
    from posrec.io.pickle import save_dataset

    ds = convert(Path(args.src), args.format)
    save_dataset(ds, Path(args.out), inputs=[args.src])
    print(format_dataset_info(dataset_info(ds)))
    print(f"-> {args.out}")


def cmd_data_info(args) -> None:
    import json

    from posrec.io.datasets import dataset_info, format_dataset_info

    info = dataset_info(Path(args.file))
    print(json.dumps(info, indent=1) if args.json else format_dataset_info(info))


def _passive_openmp() -> None:
    # Before torch loads OpenMP: threads that sleep when idle instead of spinning keep training
    # from collapsing beside a busy neighbour (benchmarks/RESULTS.md, "Threads"), and let
    # posrec.train use every core by default.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cmd_train(args) -> None:
    _passive_openmp()
    from posrec.config import load_config
    from posrec.train import train

    cfg = load_config(args.config, args.set)
    print(_metrics_line(train(cfg, resume=args.resume)))


def _metrics_line(m: dict) -> str:
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()
                    if not isinstance(v, (list, dict)))


def cmd_test(args) -> None:
    _passive_openmp()
    from posrec.config import load_config
    from posrec.evaluate import evaluate

    cfg = load_config(args.config, args.set)
    print(_metrics_line(evaluate(cfg, args.checkpoint, args.out, split=args.split)))


def cmd_ensemble(args) -> None:
    from posrec.evaluate import ensemble

    m = ensemble(args.scores, args.weights, args.out)
    for path, top1 in zip(args.scores, m.get("streams", [])):
        print(f"{path}: top1={top1:.4f}")
    print(f"ensemble: top1={m['top1']:.4f} top5={m['top5']:.4f} "
          f"mean_class_acc={m['mean_class_acc']:.4f} ({m['num_samples']} clips)")


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set train.epochs=10 train.lr=0.05 "
                        "(also repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posrec", description="Pose-based human action recognition.")
    parser.add_argument("--version", action="version", version=f"posrec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_runtime_args(p):
        """Where and how the estimator runs: shared by pose, extract and label."""
        p.add_argument("--batch", type=int, default=8, help="frames per forward pass (default 8)")
        p.add_argument("--threads", type=int, default=None, help="CPU threads (PyTorch, ONNX Runtime)")
        p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
        p.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="where MoveNet (and label's action model) run (default auto: ONNX "
                            "Runtime on the CPU, two to four times as fast as PyTorch; torch: "
                            "PyTorch)")

    def add_estimator_args(p, default, model_help=""):
        p.add_argument("--model", choices=ESTIMATORS, default=default,
                       help=f"keypoint estimator (default: {default or 'multipose'}){model_help}")
        add_runtime_args(p)

    p = sub.add_parser("pose", help="estimate poses on images, videos or a webcam",
                       description="Estimate and track COCO-17 skeletons. An image gives an overlay "
                                   "PNG and keypoints JSON; a video gives an overlay MP4 and "
                                   "per-frame JSON.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="images, videos or folders")
    p.add_argument("-o", "--out", default="pose_out", help="output folder (default: pose_out)")
    p.add_argument("--camera", type=int, default=None, metavar="N", help="read webcam N")
    p.add_argument("--show", action="store_true", help="display live ('q' quits)")
    p.add_argument("--overlay-size", default=None, metavar="SIZE",
                   help="scale the overlay video down, e.g. 720p (short side in pixels; default: "
                        "the video's own size)")
    p.add_argument("--no-video", action="store_true", help="videos: write the JSON only, no overlay")
    add_estimator_args(p, "multipose", ". multipose finds everyone in the frame; "
                       "multipose-follow finds everyone too, then follows each person on a crop "
                       "with lightning (faster for one to three people in a video); lightning "
                       "(fastest) and thunder (more accurate) follow ONE person, cropping around "
                       "them frame to frame: pick them for clips of a single person")
    p.set_defaults(func=cmd_pose)

    p = sub.add_parser("extract", help="videos -> skeleton dataset file (PYSKL pickle)",
                       description="Estimate and track every person in each video and write a "
                                   "PYSKL/MMAction2 dataset pickle; resumable.")
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR")
    p.add_argument("-o", "--out", required=True, metavar="FILE.pkl",
                   help="output file; may contain {i} for the shard index")
    p.add_argument("--labels-from-dirs", action="store_true",
                   help="class label = name of the sub-folder each video is in")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="process every N-th video starting at I ('auto': torchrun/Slurm rank)")
    p.add_argument("--max-people", type=int, default=None, help="keep the M longest tracks")
    add_estimator_args(p, None)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("train", help="train an action classifier from a YAML config",
                       description="Train (or --resume) the model × dataset setting of a config "
                                   "in configs/; writes the run directory named in it. Multi-GPU: "
                                   "torchrun --nproc-per-node N -m posrec.cli train CONFIG.")
    p.add_argument("config", metavar="CONFIG")
    _add_set(p)
    p.add_argument("--resume", action="store_true", help="continue from the run's last.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint on the config's test split",
                       description="Top-1, top-5, mean class accuracy, per-class CSV, confusion "
                                   "matrix PNG and the raw scores. The checkpoint fixes the "
                                   "model and its input; the config gives the data, splits, "
                                   "clips and test_flip, and may not contradict the checkpoint.")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--split", default=None, metavar="NAME",
                   help="score this split of the dataset (default: data.test_split)")
    p.add_argument("-o", "--out", default=None,
                   help="output folder, new or without results (default: SPLIT_STEM/ beside "
                        "the checkpoint, e.g. test_best/)")
    _add_set(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("ensemble", help="fuse the test scores of several streams")
    p.add_argument("scores", nargs="+", metavar="SCORES", help="test folders or score files")
    p.add_argument("--weights", type=float, nargs="+", default=None)
    p.add_argument("-o", "--out", default=None, help="write the fused results here")
    p.set_defaults(func=cmd_ensemble)

    from posrec.io.datasets import FORMATS

    p = sub.add_parser("label", help="who does what, when: label every person of a video",
                       description="Estimate and track everyone's skeleton, classify sliding "
                                   "windows of each person's track and write a per-person "
                                   "timeline (CSV, JSON, PNG), the skeletons and an overlay "
                                   "video. A folder labels every video in its tree into "
                                   "OUT/<relative path>/ plus OUT/summary.csv, resuming where "
                                   "it stopped.")
    p.add_argument("paths", nargs="*", metavar="VIDEO_OR_DIR")
    p.add_argument("-o", "--out", help="run directory (default label_out/<video stem>/; for a "
                                       "folder: label_out/)")
    p.add_argument("--model", default="posrec-actions-27",
                   help="action model: a shipped name (see `posrec models`), a posrec "
                        "checkpoint, or pyskl:FILE.pth (default posrec-actions-27)")
    p.add_argument("--estimator", choices=ESTIMATORS, default="multipose",
                   help="keypoint estimator (default multipose: finds everyone; "
                        "multipose-follow: MultiPose finds people, Lightning follows each on a "
                        "crop, faster for one to three people; lightning/thunder follow one "
                        "person)")
    p.add_argument("--window", type=float, help="window length in seconds (default: the model's)")
    p.add_argument("--stride", type=float, help="seconds between windows (default: the model's)")
    p.add_argument("--threshold", type=float,
                   help="calibrated probability under which a window is 'no action' "
                        "(default: the model card's)")
    p.add_argument("--every", default="auto",
                   help="estimate poses on every N-th frame (default auto: as sparse as the "
                        "model card's min_pose_fps allows, e.g. every 3rd frame at 30 fps for the shipped model)")
    add_runtime_args(p)
    from posrec.label_overlay import DEFAULT_SIZE as DEFAULT_LABEL_OVERLAY

    p.add_argument("--overlay-size", metavar="SIZE", default=DEFAULT_LABEL_OVERLAY,
                   help=f"cap the overlay video's short side (default {DEFAULT_LABEL_OVERLAY}: a "
                        f"preview, drawn and encoded at a third of 1080p's cost; 'full' keeps "
                        f"the video's size; never scales up)")
    p.add_argument("--no-video", action="store_true", help="no overlay video")
    p.add_argument("--show", action="store_true", help="show the overlay live ('q' quits)")
    p.add_argument("--camera", type=int, metavar="N", help="label webcam N live (rolling window)")
    p.add_argument("--shard", metavar="I/N", help="folders: label every N-th video from the "
                                                  "I-th ('auto': torchrun / Slurm array)")
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("models", help="list the shipped action models and what --model takes")
    p.set_defaults(func=cmd_models)

    data = sub.add_parser("data", help="skeleton dataset files: convert, info, split, merge")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = dsub.add_parser("convert", help="a dataset in its own format -> posrec/PYSKL pickle")
    p.add_argument("src", metavar="SRC", help="file or folder (Penn .mat dir, NW-UCLA json dir, "
                                              "Kinetics json, NTU .skeleton dir, PYSKL pickle)")
    p.add_argument("-o", "--out", required=True, metavar="FILE.pkl")
    p.add_argument("--format", default="auto",
                   choices=["auto", *FORMATS])
    p.set_defaults(func=cmd_data_convert)
    p = dsub.add_parser("info", help="classes, split sizes, lengths and layout of a dataset file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_data_info)
    p = dsub.add_parser("split", help="cut a dataset's clips into train/val/test (stratified, "
                                      "seeded), e.g. the 'all' split of posrec extract")
    p.add_argument("file")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--source", default="all", help="the split to cut (default all)")
    p.add_argument("--val", type=float, default=0.15, help="fraction for validation (0.15)")
    p.add_argument("--test", type=float, default=0.15, help="fraction for test (0.15)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_split)
    p = dsub.add_parser("merge", help="join dataset files (e.g. extract shards)")
    p.add_argument("parts", nargs="+", metavar="FILE.pkl")
    p.add_argument("-o", "--out", required=True, metavar="FILE.pkl")
    p.set_defaults(func=cmd_data_merge)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenCV and FFmpeg log to stderr from C; a user wants posrec's one line, not theirs.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"posrec: warning: {msg}\n"
    try:
        code = args.func(args)
    except PosrecError as err:
        print(f"posrec: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("posrec: interrupted", file=sys.stderr)
        return 130
    return code or 0  # a command returns 1 when it finished but some inputs failed


if __name__ == "__main__":
    sys.exit(main())
