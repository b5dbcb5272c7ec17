"""Training and evaluation of the skeleton recognisers, single process or DDP under torchrun.

``train(cfg)`` follows PYSKL's recipe: SGD with Nesterov momentum, cosine learning rate with a
linear warm-up (both per iteration), cross-entropy with optional label smoothing, gradient
clipping, bfloat16 autocast on CUDA. A run directory (``cfg.out_dir``) holds ``config.yaml``,
``metrics.csv``, ``train.log``, ``curves.png``, ``last.pt`` (every epoch) and ``best.pt`` (best
validation top-1), all written atomically; ``train(cfg, resume=True)`` continues from ``last.pt``
and, on CPU, reproduces an uninterrupted run with the same seed exactly.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its shard (DistributedSampler),
gradients are averaged by DDP, metrics and scores are gathered, and only rank 0 writes. The same
code runs with one process: the collective helpers below reduce to the identity.

``evaluate(cfg, checkpoint)`` averages softmax scores over ``cfg.data.num_clips`` test clips and
writes top-1/top-5/mean class accuracy, a per-class CSV, the confusion matrix and raw scores.
``ensemble(score_files, weights)`` fuses the scores of several streams.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from posrec.config import Config, config_to_dict, resolve_path
from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write

log = logging.getLogger("posrec.train")

METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "val_top1", "val_top5", "lr",
                 "samples_per_s", "time")
# Config keys that may change between a run and its resumption without changing its result.
_RESUME_FREE = {"num_workers", "threads", "device", "final_test", "test_batch_size",
                "test_checkpoint"}


# --------------------------------------------------------------------------------------------
# Processes: one, or several under torchrun


class _Dist:
    """Rank, world size and device of this process; collectives that are identities alone."""

    def __init__(self, device: str = "auto"):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise PosrecError("train.device is 'cuda' but no CUDA device is available")
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        self.owns_group = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
            self.owns_group = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        """Sum numbers over processes (float64 on the training device)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj: Any) -> list:
        """Every process's ``obj``, in rank order (on every rank)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on rank 0, its result (or its PosrecError) on every rank."""
        out, err = None, None
        if self.main:
            try:
                out = fn()
            except PosrecError as e:
                err = str(e)
        out, err = self.broadcast((out, err))
        if err is not None:
            raise PosrecError(err)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()


class _ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...`` in order: an evaluation shard with no padding, so
    gathered scores need no de-duplication."""

    def __init__(self, n: int, rank: int, world: int):
        self.idx = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.idx)

    def __len__(self) -> int:
        return len(self.idx)


class _Indexed(Dataset):
    """``(x, label, index)`` samples, so evaluation shards can be put back in order."""

    def __init__(self, ds: Dataset, repeat: int = 1):
        self.ds, self.n, self.repeat = ds, len(ds), repeat

    def __len__(self) -> int:
        return self.n * self.repeat

    def __getitem__(self, i: int):
        x, y = self.ds[i % self.n]
        return x, y, i % self.n


def _worker_init(worker_id: int) -> None:
    # DataLoader seeds torch in each worker from the loader's base seed (drawn from the main
    # process's torch RNG, which checkpoints restore); numpy and random follow it.
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


# --------------------------------------------------------------------------------------------
# RNG state as tensors and lists (checkpoints load with weights_only=True)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    ver, pstate, pgauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(gauss)],
        "python": [ver, list(pstate), pgauss],
    }


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    kind, keys, pos, has_gauss, gauss = s["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    ver, pstate, pgauss = s["python"]
    random.setstate((ver, tuple(pstate), pgauss))


# --------------------------------------------------------------------------------------------
# Data


def load_data(cfg: Config) -> dict:
    """The dataset dict of ``cfg.data`` (converted from a raw source and cached if asked),
    checked against the config and cut to ``train_per_class`` / ``test_per_class``."""
    from posrec.io.pickle import load_dataset, save_dataset

    d = cfg.data
    if not d.source:
        raise PosrecError(f"{cfg.name}: 'data.source' is not set")
    src = resolve_path(d.source)
    if not src.exists():
        raise PosrecError(f"data.source {src} does not exist")
    if d.format == "pickle":
        data = load_dataset(src)
    else:
        cache = resolve_path(d.cache) if d.cache else None
        if cache is not None and cache.exists():
            data = load_dataset(cache)
        else:
            from posrec.io.datasets import convert

            data = convert(src, d.format)
            if cache is not None:
                save_dataset(data, cache)
    return _prepare(data, cfg)


def _class_names(data: dict, cfg: Config) -> list[str]:
    names = data.get("classes") or data.get("class_names")
    labels = [a["label"] for a in data["annotations"] if "label" in a]
    k = cfg.model.num_classes or (len(names) if names else (max(labels) + 1 if labels else 0))
    if names and len(names) != k:
        raise PosrecError(f"model.num_classes is {k} but the dataset names {len(names)} classes")
    return [str(n) for n in names] if names else [str(i) for i in range(k)]


def _prepare(data: dict, cfg: Config) -> dict:
    """Check layout, splits and labels; apply the per-class cuts. Returns a new dict."""
    from posrec import skeleton

    d = cfg.data
    if not d.layout:
        raise PosrecError(f"{cfg.name}: 'data.layout' is not set")
    num_joints = skeleton.get_layout(d.layout).num_joints
    classes = _class_names(data, cfg)
    by_dir = {a["frame_dir"]: a for a in data["annotations"]}
    split = dict(data.get("split", {}))
    val = d.val_split or d.test_split
    for name in dict.fromkeys((d.train_split, d.test_split, val)):
        dirs = split.get(name)
        if not dirs:
            have = ", ".join(f"{k} ({len(v)})" for k, v in split.items()) or "none"
            raise PosrecError(f"dataset split '{name}' is empty or missing (splits: {have})")
        per_class = d.train_per_class if name == d.train_split else d.test_per_class
        kept, count = [], {}
        for fd in dirs:
            a = by_dir.get(fd)
            if a is None:
                raise PosrecError(f"split '{name}' lists clip '{fd}' that has no annotation")
            lay = a.get("layout")
            if lay is not None and lay != d.layout:
                raise PosrecError(f"dataset layout '{lay}' (clip '{fd}') does not match the "
                                  f"model layout '{d.layout}' (data.layout)")
            if a["keypoint"].shape[-2] != num_joints:
                raise PosrecError(f"clip '{fd}' has {a['keypoint'].shape[-2]} joints but layout "
                                  f"'{d.layout}' has {num_joints}")
            y = a.get("label")
            if y is None or not 0 <= int(y) < len(classes):
                raise PosrecError(f"clip '{fd}' has label {y}, outside 0..{len(classes) - 1} "
                                  f"({len(classes)} classes)")
            if per_class is not None:
                count[y] = count.get(y, 0) + 1
                if count[y] > per_class:
                    continue
            kept.append(fd)
        split[name] = kept
    return {**data, "split": split, "classes": classes}


def _spec(cfg: Config, data: dict):
    """The input pipeline spec of ``cfg`` for ``data`` (2D or 3D from its first clip)."""
    from posrec.data.pipeline import spec_from_config

    return spec_from_config(cfg, int(data["annotations"][0]["keypoint"].shape[-1]))


def _transform(cfg: Config, data: dict, train: bool, num_clips: int) -> Callable:
    """Normalise, sample clips, augment (training only), pad people, streams, tensor."""
    from posrec.data.pipeline import build_transform

    return build_transform(_spec(cfg, data), train, num_clips, cfg.data.augment,
                           cfg.data.test_flip)


def _dataset(cfg: Config, data: dict, split: str, train: bool, num_clips: int):
    from posrec.data.dataset import SkeletonDataset

    return SkeletonDataset(data, split, _transform(cfg, data, train, num_clips))


def _loader(ds: Dataset, sampler: Sampler, batch_size: int, cfg: Config, dev: _Dist,
            repeat: int = 1) -> DataLoader:
    w = cfg.train.num_workers
    return DataLoader(_Indexed(ds, repeat), batch_size=batch_size, sampler=sampler,
                      num_workers=w, worker_init_fn=_worker_init if w else None,
                      pin_memory=dev.device.type == "cuda", drop_last=False)


# --------------------------------------------------------------------------------------------
# Model, optimiser, schedule, checkpoints


def _build_model(cfg: Config, num_classes: int, in_channels: int) -> nn.Module:
    from posrec.models import build_model

    try:
        return build_model(cfg.model.arch, num_classes, cfg.data.layout, in_channels=in_channels,
                           num_person=cfg.model.num_person, **cfg.model.flags)
    except TypeError as e:  # an unknown flag
        raise PosrecError(f"model.flags: {e}") from None


def _schedule(cfg: Config, iters_per_epoch: int) -> Callable[[int], float]:
    """LR factor per iteration: linear warm-up to 1, then cosine down to min_lr / lr."""
    t = cfg.train
    total = max(1, t.epochs * iters_per_epoch)
    warm = min(total, int(round(t.warmup_epochs * iters_per_epoch)))
    floor = t.min_lr / t.lr if t.lr > 0 else 0.0

    def factor(it: int) -> float:
        if it < warm:
            return (it + 1) / warm
        p = (it - warm) / max(1, total - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    return factor


def _save(obj: dict, path: Path) -> None:
    # torch.save into a temporary file, then os.replace: a kill never leaves half a checkpoint.
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A posrec checkpoint, loaded with ``weights_only=True`` (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise PosrecError(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0]
        raise PosrecError(f"{path}: not a readable posrec checkpoint "
                          f"({type(e).__name__}: {first})") from None
    if not isinstance(ck, dict) or "state_dict" not in ck or "config" not in ck:
        raise PosrecError(f"{path}: not a posrec checkpoint (no state_dict/config)")
    return ck


def _check_checkpoint(ck: dict, cfg: Config, num_classes: int, path: Path) -> None:
    want = (cfg.model.arch, num_classes, cfg.data.layout)
    have = (ck.get("arch"), ck.get("num_classes"), ck.get("layout"))
    if have != want:
        raise PosrecError(
            f"{path}: checkpoint is from another model: {have[0]}, {have[1]} classes, layout "
            f"{have[2]}; the config builds {want[0]}, {want[1]} classes, layout {want[2]}")


def _load_state(model: nn.Module, ck: dict, path: Path) -> None:
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        first = [s.strip() for s in str(e).splitlines() if s.strip()][1:2]
        raise PosrecError(f"{path}: checkpoint weights do not fit the model "
                          f"({first[0] if first else 'shape or key mismatch'})") from None


# --------------------------------------------------------------------------------------------
# Epochs


def _autocast(cfg: Config, dev: _Dist):
    if cfg.train.amp and dev.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _bar(it, dev: _Dist, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, disable=not dev.main, leave=False, mininterval=1.0,
                dynamic_ncols=True)


def _train_epoch(model, loader, opt, sched, crit, cfg: Config, dev: _Dist, epoch: int) -> dict:
    model.train()
    loss_sum = correct = n = 0.0
    t0 = time.perf_counter()
    bar = _bar(loader, dev, len(loader), f"epoch {epoch + 1}/{cfg.train.epochs}")
    for x, y, _ in bar:
        x = x[:, 0].to(dev.device, non_blocking=True)  # (N, 1, M, T, V, C) -> one clip each
        y = y.to(dev.device, non_blocking=True)
        with _autocast(cfg, dev):
            logits = model(x)
        loss = crit(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        sched.step()
        b = y.numel()
        loss_sum += loss.item() * b
        correct += (logits.argmax(1) == y).sum().item()
        n += b
        bar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}",
                        sps=f"{n * dev.world / (time.perf_counter() - t0):.0f}", refresh=False)
    bar.close()
    loss_sum, correct, n = dev.sum(loss_sum, correct, n)
    dt = time.perf_counter() - t0
    return {"train_loss": loss_sum / max(n, 1), "train_acc": correct / max(n, 1),
            "samples_per_s": n / dt, "train_time": dt}


@torch.no_grad()
def _predict(model, loader, cfg: Config, dev: _Dist, n_total: int, k: int, desc: str) -> tuple:
    """Softmax scores averaged over clips, gathered from all processes.

    Returns ``(scores (N, K) float32, labels (N,) int64)`` in dataset order.
    """
    model.eval()
    idx, scores, labels = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, k)], \
        [torch.zeros(0, dtype=torch.long)]
    for x, y, i in _bar(loader, dev, len(loader), desc):
        n, nc = x.shape[:2]
        x = x.flatten(0, 1).to(dev.device, non_blocking=True)  # (N * clips, M, T, V, C)
        with _autocast(cfg, dev):
            logits = model(x)
        scores.append(logits.float().softmax(-1).view(n, nc, k).mean(1).cpu())
        labels.append(y.long())
        idx.append(i.long())
    out_s = np.zeros((n_total, k), np.float32)
    out_y = np.zeros(n_total, np.int64)
    for i, s, y in dev.gather((torch.cat(idx), torch.cat(scores), torch.cat(labels))):
        out_s[i.numpy()] = s.numpy()
        out_y[i.numpy()] = y.numpy()
    return out_s, out_y


def topk(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores.

    scores (N, K), labels (N,) int; NaN for N = 0."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(1).mean())


def confusion(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class."""
    return np.bincount(labels * num_classes + pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def score_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """top1, top5 and mean class accuracy (mean over classes present) of (N, K) scores."""
    cm = confusion(labels, scores.argmax(1), scores.shape[1])
    support = cm.sum(1)
    present = support > 0
    return {"top1": topk(scores, labels, 1), "top5": topk(scores, labels, 5),
            "mean_class_acc": float((np.diag(cm)[present] / support[present]).mean()),
            "num_samples": int(len(labels))}


# --------------------------------------------------------------------------------------------
# Run directory


def _write_metrics_csv(path: Path, history: list[dict]) -> None:
    with atomic_write(path, "w") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(history)


def _setup_logging(run: Path, dev: _Dist) -> logging.Handler | None:
    if not dev.main:
        return None
    h = logging.FileHandler(run / "train.log", encoding="utf-8")
    h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(h)
    log.setLevel(logging.INFO)
    return h


def _say(dev: _Dist, msg: str) -> None:
    """Log a line to train.log and show it above the progress bars (rank 0 only)."""
    if dev.main:
        from tqdm.auto import tqdm

        log.info(msg)
        tqdm.write(msg)


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k in _RESUME_FREE or k in ("out_dir", "name"):
                continue
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _open_run(cfg: Config, run: Path, resume: bool) -> dict | None:
    """Create the run directory; the checkpoint to resume from, if any."""
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "last.pt").exists():
        return None
    if not resume:
        raise PosrecError(f"{run} already holds a run (last.pt): resume it with --resume "
                          f"or choose another out_dir")
    ck = load_checkpoint(run / "last.pt")
    diff = _diff_keys(ck["config"], config_to_dict(cfg))
    if diff:
        raise PosrecError(f"cannot resume {run}: the config differs from the run's "
                          f"in {', '.join(diff)}")
    return ck


def train(cfg: Config, resume: bool = False,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> dict:
    """Train ``cfg.model`` on ``cfg.data``; write the run directory ``cfg.out_dir``.

    ``resume``: continue from ``out_dir/last.pt`` (a fresh start if there is none).
    ``on_epoch_end(epoch, row)``: called on every process after each epoch's checkpoint is
    written (``epoch`` counts from 1; ``row`` is the metrics.csv row). An exception raised there
    stops the run as a kill would.

    Returns the final metrics: ``epoch``, ``train_loss``, ``train_acc``, ``val_top1``,
    ``val_top5``, ``best_epoch``, ``best_val_top1`` and, with ``train.final_test``, ``test_top1``,
    ``test_top5``, ``test_mean_class_acc`` of ``train.test_checkpoint`` (last.pt by default:
    choosing best.pt on a validation split that is the test split flatters the result) on the
    test split with ``data.num_clips`` clips, its files in ``out_dir/test``.
    """
    dev = _Dist(cfg.train.device)
    threads = torch.get_num_threads()
    handler = None
    try:
        torch.set_num_threads(cfg.train.threads or max(1, (os.cpu_count() or 1) // dev.world))
        run = resolve_path(cfg.out_dir)
        ck = dev.on_main(lambda: _open_run(cfg, run, resume))
        handler = _setup_logging(run, dev)
        return _train(cfg, dev, run, ck, on_epoch_end)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        torch.set_num_threads(threads)
        dev.close()


def _train(cfg: Config, dev: _Dist, run: Path, ck: dict | None, on_epoch_end) -> dict:
    from posrec import viz

    t = cfg.train
    _seed_all(t.seed)
    data = load_data(cfg)
    classes = data["classes"]
    val_split = cfg.data.val_split or cfg.data.test_split
    train_ds = _dataset(cfg, data, cfg.data.train_split, True, 1)
    val_ds = _dataset(cfg, data, val_split, False, cfg.data.val_clips)
    in_ch = _in_channels(cfg, val_ds)
    model = _build_model(cfg, len(classes), in_ch).to(dev.device)
    if dev.world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.local_rank] if dev.device.type == "cuda" else None)
    net = model.module if dev.world > 1 else model

    sampler = DistributedSampler(_Indexed(train_ds, t.repeat), num_replicas=dev.world,
                                 rank=dev.rank, shuffle=True, seed=t.seed)
    train_dl = _loader(train_ds, sampler, t.batch_size, cfg, dev, t.repeat)
    val_dl = _loader(val_ds, _ShardSampler(len(val_ds), dev.rank, dev.world),
                     t.test_batch_size or t.batch_size, cfg, dev)
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                          weight_decay=t.weight_decay, nesterov=t.nesterov and t.momentum > 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, len(train_dl)))
    crit = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)

    history: list[dict] = []
    best = {"best_epoch": 0, "best_val_top1": -1.0}
    start = 0
    if ck is not None:
        _check_checkpoint(ck, cfg, len(classes), run / "last.pt")
        _load_state(net, ck, run / "last.pt")
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        history = [dict(r) for r in ck["history"]]
        best = {"best_epoch": ck["best_epoch"], "best_val_top1": ck["best_val_top1"]}
        start = ck["epoch"]
        rngs = ck["rng"]
        if dev.rank < len(rngs):
            _set_rng_state(rngs[dev.rank])
        else:  # more processes than the run had: new ranks start fresh streams
            _seed_all(t.seed + 1000 * dev.rank + start)
        _say(dev, f"resumed {run} after epoch {start}")
    else:
        if t.init_from:
            src = resolve_path(t.init_from)
            init = load_checkpoint(src)
            _check_checkpoint(init, cfg, len(classes), src)
            _load_state(net, init, src)
            _say(dev, f"weights from {src} (epoch {init.get('epoch')})")
        _seed_all(t.seed + dev.rank)  # model init above used `seed` on every rank (DDP syncs it)
        if dev.main:
            from posrec.config import save_config

            save_config(cfg, run / "config.yaml")
            _say(dev, f"{cfg.model.arch} ({sum(p.numel() for p in net.parameters()):,} params) on "
                      f"{cfg.data.layout}: {len(train_ds)} train / {len(val_ds)} val clips, "
                      f"{len(classes)} classes, {dev.world} process(es) on {dev.device}, "
                      f"{torch.get_num_threads()} threads")
    if dev.main:
        _write_metrics_csv(run / "metrics.csv", history)

    row: dict = history[-1] if history else {}
    for epoch in range(start, t.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        lr = opt.param_groups[0]["lr"]
        stats = _train_epoch(model, train_dl, opt, sched, crit, cfg, dev, epoch)
        val = {"val_top1": float("nan"), "val_top5": float("nan")}
        if (epoch + 1) % t.val_interval == 0 or epoch + 1 == t.epochs:
            s, y = _predict(model, val_dl, cfg, dev, len(val_ds), len(classes), "val")
            val = {"val_top1": topk(s, y, 1), "val_top5": topk(s, y, 5)}
        row = {"epoch": epoch + 1, "train_loss": stats["train_loss"],
               "train_acc": stats["train_acc"], **val, "lr": lr,
               "samples_per_s": stats["samples_per_s"], "time": time.perf_counter() - t0}
        history.append(row)
        improved = val["val_top1"] > best["best_val_top1"]  # NaN (no validation) never improves
        if improved:
            best = {"best_epoch": epoch + 1, "best_val_top1": val["val_top1"]}
        rngs = dev.gather(_rng_state())
        if dev.main:
            state = {"state_dict": net.state_dict(), "config": config_to_dict(cfg),
                     "class_names": list(classes), "layout": cfg.data.layout,
                     "arch": cfg.model.arch, "num_classes": len(classes), "in_channels": in_ch,
                     "pipeline": _spec(cfg, data).to_dict(),
                     "metrics": dict(row), "epoch": epoch + 1, **best, "history": history,
                     "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rngs}
            if improved:
                _save(state, run / "best.pt")
            _save(state, run / "last.pt")
            _write_metrics_csv(run / "metrics.csv", history)
            _say(dev, f"epoch {epoch + 1}/{t.epochs} loss {row['train_loss']:.4f} "
                      f"acc {row['train_acc']:.4f} val top1 {row['val_top1']:.4f} "
                      f"top5 {row['val_top5']:.4f} lr {lr:.4g} "
                      f"{row['samples_per_s']:.1f} samples/s {row['time']:.1f} s, "
                      f"peak memory {_peak_memory_mb(dev):.0f} MB")
        dev.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)

    if dev.main and history:
        viz.plot_learning_curves(history, run / "curves.png")
    out = {k: row.get(k) for k in ("epoch", "train_loss", "train_acc", "val_top1", "val_top5")}
    out.update(best)
    if t.final_test and t.epochs > 0:
        dev.barrier()
        which = run / f"{t.test_checkpoint}.pt"
        if t.test_checkpoint == "best" and best["best_epoch"] == 0:  # never validated well
            which = run / "last.pt"
        res = evaluate(cfg, which, run / "test", _dev=dev, _data=data)
        out.update({f"test_{k}": v for k, v in res.items() if k != "num_samples"})
    return out


def _peak_memory_mb(dev: _Dist) -> float:
    """Peak resident memory of this process so far (MB); on CUDA, peak allocated GPU memory."""
    if dev.device.type == "cuda":
        return torch.cuda.max_memory_allocated(dev.device) / 1e6
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KB on Linux


def _in_channels(cfg: Config, ds) -> int:
    c = int(ds[0][0].shape[-1])
    if cfg.model.in_channels not in (None, c):
        raise PosrecError(f"model.in_channels is {cfg.model.in_channels} but the data with "
                          f"feats {cfg.data.feats} has {c} channels")
    return c


# --------------------------------------------------------------------------------------------
# Evaluation and ensembles


def evaluate(cfg: Config, checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
             *, _dev: _Dist | None = None, _data: dict | None = None) -> dict:
    """Test ``checkpoint`` on ``cfg.data.test_split`` with ``cfg.data.num_clips`` clips (and
    their mirrors with ``cfg.data.test_flip``).

    Writes to ``out_dir`` (default: ``test/`` next to the checkpoint): ``metrics.json``,
    ``per_class.csv`` (class, support, correct, accuracy), ``confusion.csv`` and
    ``confusion.png`` (rows = true class), ``scores.npy`` (N, K float32 softmax averaged over
    clips) and ``scores.pkl`` (``scores``, ``labels``, ``frame_dirs``, ``class_names``: plain
    containers and arrays, readable by posrec's restricted unpickler and by PYSKL tools).
    Returns ``top1``, ``top5``, ``mean_class_acc``, ``num_samples``.
    """
    dev = _dev or _Dist(cfg.train.device)
    try:
        path = Path(checkpoint)
        ck = dev.on_main(lambda: load_checkpoint(path))
        data = _data if _data is not None else load_data(cfg)
        classes = data["classes"]
        _check_checkpoint(ck, cfg, len(classes), path)
        if list(ck.get("class_names", classes)) != list(classes):
            raise PosrecError(f"{path}: checkpoint class names differ from the dataset's")
        split = cfg.data.test_split
        ds = _dataset(cfg, data, split, False, cfg.data.num_clips)
        model = _build_model(cfg, len(classes), _in_channels(cfg, ds)).to(dev.device)
        _load_state(model, ck, path)
        dl = _loader(ds, _ShardSampler(len(ds), dev.rank, dev.world),
                     cfg.train.test_batch_size or cfg.train.batch_size, cfg, dev)
        scores, labels = _predict(model, dl, cfg, dev, len(ds), len(classes), "test")
        metrics = score_metrics(scores, labels)
        if dev.main:
            out = Path(out_dir) if out_dir is not None else path.parent / "test"
            frame_dirs = _frame_dirs(ds, data, split)
            write_results(out, scores, labels, frame_dirs, classes, metrics)
            _say(dev, f"test {path}: top1 {metrics['top1']:.4f} top5 {metrics['top5']:.4f} "
                      f"mean class acc {metrics['mean_class_acc']:.4f} "
                      f"({metrics['num_samples']} clips, {cfg.data.num_clips} crops"
                      f"{' + mirrored' if cfg.data.test_flip else ''}) -> {out}")
        return metrics
    finally:
        if _dev is None:
            dev.close()


def _frame_dirs(ds, data: dict, split: str) -> list[str]:
    annos = getattr(ds, "annotations", None)
    if annos is not None:
        return [str(a["frame_dir"]) for a in annos]
    return [str(x) for x in data["split"][split]]


def write_results(out: Path, scores: np.ndarray, labels: np.ndarray, frame_dirs: Sequence[str],
                  classes: Sequence[str], metrics: dict) -> None:
    """The files of :func:`evaluate` (see there) for (N, K) ``scores`` and (N,) ``labels``."""
    from posrec import viz
    from posrec.io.pickle import save_pickle

    out.mkdir(parents=True, exist_ok=True)
    k = len(classes)
    cm = confusion(labels, scores.argmax(1), k)
    with atomic_write(out / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    with atomic_write(out / "per_class.csv", "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["class_index", "class_name", "support", "correct", "accuracy"])
        for i, name in enumerate(classes):
            n = int(cm[i].sum())
            w.writerow([i, name, n, int(cm[i, i]), f"{cm[i, i] / n:.6f}" if n else ""])
    with atomic_write(out / "confusion.csv", "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["true\\pred", *classes])
        for i, name in enumerate(classes):
            w.writerow([name, *cm[i].tolist()])
    viz.plot_confusion(cm, classes, out / "confusion.png")
    with atomic_write(out / "scores.npy", "wb") as f:
        np.save(f, scores.astype(np.float32))
    save_pickle({"scores": scores.astype(np.float32), "labels": labels.astype(np.int64),
                 "frame_dirs": list(frame_dirs), "class_names": list(classes)}, out / "scores.pkl")


def load_scores(path: str | os.PathLike) -> dict:
    """A ``scores.pkl`` of :func:`evaluate` (or a directory holding one), read without running
    code: ``scores`` (N, K), ``labels`` (N,), ``frame_dirs``, ``class_names``."""
    from posrec.io.pickle import load_pickle

    path = Path(path)
    if path.is_dir():
        path = path / "scores.pkl"
    if not path.is_file():
        raise PosrecError(f"score file {path} does not exist")
    d = load_pickle(path)
    if not isinstance(d, dict) or not {"scores", "labels", "frame_dirs"} <= set(d):
        raise PosrecError(f"{path}: not a posrec score file (needs scores, labels, frame_dirs)")
    return d


def ensemble(score_files: Sequence[str | os.PathLike], weights: Sequence[float] | None = None,
             out_dir: str | os.PathLike | None = None) -> dict:
    """Fuse streams: the weighted sum of each file's softmax scores, matched by ``frame_dir``.

    Returns ``top1``, ``top5``, ``mean_class_acc``, ``num_samples`` of the fusion and
    ``streams``: each file's own top-1. With ``out_dir`` writes the files of :func:`evaluate`.
    """
    if not score_files:
        raise PosrecError("ensemble: no score files given")
    weights = [1.0] * len(score_files) if weights is None else [float(w) for w in weights]
    if len(weights) != len(score_files):
        raise PosrecError(f"ensemble: {len(score_files)} score files but {len(weights)} weights")
    runs = [load_scores(p) for p in score_files]
    ref = runs[0]
    order = {fd: i for i, fd in enumerate(ref["frame_dirs"])}
    fused = np.zeros_like(np.asarray(ref["scores"], np.float64))
    streams = []
    for p, r, w in zip(score_files, runs, weights):
        s, y = np.asarray(r["scores"]), np.asarray(r["labels"])
        if sorted(r["frame_dirs"]) != sorted(ref["frame_dirs"]) or s.shape != fused.shape:
            raise PosrecError(f"ensemble: {p} scores other clips or classes than "
                              f"{score_files[0]}")
        idx = np.array([order[fd] for fd in r["frame_dirs"]])
        if (np.asarray(ref["labels"])[idx] != y).any():
            raise PosrecError(f"ensemble: {p} labels the same clips differently")
        fused[idx] += w * s
        streams.append(topk(s, y, 1))
    labels = np.asarray(ref["labels"])
    metrics = score_metrics(fused, labels)
    if out_dir is not None:
        classes = ref.get("class_names") or [str(i) for i in range(fused.shape[1])]
        write_results(Path(out_dir), fused.astype(np.float32), labels, ref["frame_dirs"],
                      classes, metrics)
    return {**metrics, "streams": streams}
