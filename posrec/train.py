"""Training of the skeleton recognisers, single process or DDP under torchrun.

``train(cfg)`` follows PYSKL's recipe: SGD with Nesterov momentum, cosine learning rate with a
linear warm-up (both per iteration), cross-entropy with optional label smoothing, gradient
clipping, bfloat16 autocast on CUDA. A run directory (``cfg.out_dir``) holds ``config.yaml``,
``metrics.csv``, ``train.log``, ``curves.png``, ``last.pt`` (every epoch) and ``best.pt`` (best
top-1 on the validation split, which is never the test split: see :mod:`posrec.splits`), all
written atomically in the schema of :mod:`posrec.checkpoint`; ``train(cfg, resume=True)``
continues from ``last.pt`` and, on CPU, reproduces an uninterrupted run with the same seed
exactly. After the last epoch ``train.final_test`` scores ``train.test_checkpoint`` on the test
split into ``test_best/`` (or ``test_last/``) with :func:`posrec.evaluate.evaluate`.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its shard (DistributedSampler),
gradients are averaged by DDP, metrics and scores are gathered, and only rank 0 writes.

Threads: ``train.threads`` if set; else, with ``OMP_NUM_THREADS`` set, what torch has; else
the cores shared among the processes if OpenMP threads sleep when idle
(``OMP_WAIT_POLICY=PASSIVE``, which ``posrec train`` and ``posrec test`` set before torch loads)
and one thread if they spin (OpenMP's default), never more than the caller already set with
``torch.set_num_threads``. Spinning threads beside a busy neighbour made a training step 10
times slower than one thread; sleeping ones did not (``benchmarks/bench_threads.py``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils.data import DistributedSampler

from posrec.checkpoint import (LAST_EPOCH, best_selection, check_same_model, load_checkpoint,
                               load_state, save_checkpoint)
from posrec.config import Config, config_to_dict, resolve_path
from posrec.distributed import (Dist, Indexed, ShardSampler, log, make_loader, peak_memory_mb,
                                progress, rng_state, say, seed_all, set_rng_state)
from posrec.errors import PosrecError
from posrec.evaluate import autocast, default_out_dir, evaluate, predict, topk
from posrec.io.atomic import atomic_write

METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "val_top1", "val_top5", "lr",
                 "samples_per_s", "time")
# Config keys that may change between a run and its resumption without changing its result.
_RESUME_FREE = {"num_workers", "threads", "device", "final_test", "test_batch_size",
                "test_checkpoint"}


def choose_threads(explicit: int | None, world: int = 1) -> int:
    """The torch thread count of a training process (see the module docstring)."""
    if explicit:
        return explicit
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    share = max(1, (os.cpu_count() or 1) // world)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        share = 1  # spinning OpenMP threads collapse when another process wants the cores
    return max(1, min(torch.get_num_threads(), share))


def train(cfg: Config, resume: bool = False,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> dict:
    """Train ``cfg.model`` on ``cfg.data``; write the run directory ``cfg.out_dir``.

    ``resume``: continue from ``out_dir/last.pt`` (a fresh start if there is none).
    ``on_epoch_end(epoch, row)``: called on every process after each epoch's checkpoint is
    written (``epoch`` counts from 1; ``row`` is the metrics.csv row). An exception raised there
    stops the run as a kill would.

    Returns the final metrics: ``epoch``, ``train_loss``, ``train_acc``, ``val_top1``,
    ``val_top5`` (None without validation), ``best_epoch``, ``best_val_top1`` and, with
    ``train.final_test``, ``test_top1``, ``test_top5``, ``test_mean_class_acc`` of
    ``train.test_checkpoint`` (best.pt by default, chosen on validation; last.pt when nothing
    was validated) on the test split with ``data.num_clips`` clips.
    """
    dev = Dist(cfg.train.device)
    threads = torch.get_num_threads()
    handler = None
    try:
        torch.set_num_threads(choose_threads(cfg.train.threads, dev.world))
        run = resolve_path(cfg.out_dir)
        ck = dev.on_main(lambda: _open_run(cfg, run, resume))
        handler = _setup_logging(run, dev)
        r = _setup(cfg, dev, run)
        _resume_or_init(r, ck)
        for epoch in range(r.start, cfg.train.epochs):
            row = _epoch(r, epoch)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
        return _finish(r)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        torch.set_num_threads(threads)
        dev.close()


@dataclass
class _Run:
    """Everything one training holds between its steps."""

    cfg: Config
    dev: Dist
    run: Path
    data: dict
    spec: Any                      # the InputSpec the checkpoints record
    in_channels: int
    model: nn.Module               # DDP-wrapped under torchrun
    net: nn.Module                 # the model itself
    sampler: DistributedSampler
    train_dl: Any
    val: tuple | None              # (dataset, loader) of the validation split, or None
    opt: torch.optim.Optimizer
    sched: Any
    crit: nn.Module
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"best_epoch": 0, "best_val_top1": -1.0})
    start: int = 0

    @property
    def classes(self) -> list[str]:
        return self.data["classes"]


def _setup(cfg: Config, dev: Dist, run: Path) -> _Run:
    """Data, model, loaders, optimiser and schedule of a fresh run (seeded)."""
    from posrec.splits import input_spec, load_data, split_dataset

    t = cfg.train
    seed_all(t.seed)
    data = load_data(cfg)
    spec = input_spec(cfg, data)
    train_ds = split_dataset(spec, data, cfg.data.train_split, augment=cfg.data.augment)
    # channels from an unaugmented clip: test-mode sampling draws nothing from the global RNGs
    in_ch = _in_channels(cfg, split_dataset(spec, data, cfg.data.train_split))
    net = _build_model(cfg, len(data["classes"]), in_ch).to(dev.device)
    model = net if dev.world == 1 else nn.parallel.DistributedDataParallel(
        net, device_ids=[dev.local_rank] if dev.device.type == "cuda" else None)
    sampler = DistributedSampler(Indexed(train_ds, t.repeat), num_replicas=dev.world,
                                 rank=dev.rank, shuffle=True, seed=t.seed)
    train_dl = make_loader(train_ds, sampler, t.batch_size, t.num_workers, dev, t.repeat)
    val = None
    if data["validation"] is not None:
        val_ds = split_dataset(spec, data, data["validation"]["split"], cfg.data.val_clips,
                               test_flip=cfg.data.test_flip)
        val = (val_ds, make_loader(val_ds, ShardSampler(len(val_ds), dev.rank, dev.world),
                                   t.test_batch_size or t.batch_size, t.num_workers, dev))
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                          weight_decay=t.weight_decay, nesterov=t.nesterov and t.momentum > 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(cfg, len(train_dl)))
    return _Run(cfg, dev, run, data, spec, in_ch, model, net, sampler, train_dl, val, opt, sched,
                nn.CrossEntropyLoss(label_smoothing=t.label_smoothing))


def _resume_or_init(r: _Run, ck: dict | None) -> None:
    """Restore ``last.pt``'s state (``ck``), or start fresh (optionally from ``init_from``'s
    weights) and write the run's config."""
    cfg, dev, t = r.cfg, r.dev, r.cfg.train
    if ck is not None:
        check_same_model(ck, cfg.model.arch, len(r.classes), cfg.data.layout, r.run / "last.pt")
        load_state(r.net, ck, r.run / "last.pt")
        r.opt.load_state_dict(ck["optimizer"])
        r.sched.load_state_dict(ck["scheduler"])
        r.history = [dict(row) for row in ck["history"]]
        r.best = {"best_epoch": ck["best_epoch"], "best_val_top1": ck["best_val_top1"]}
        r.start = ck["epoch"]
        if dev.rank < len(ck["rng"]):
            set_rng_state(ck["rng"][dev.rank])
        else:  # more processes than the run had: new ranks start fresh streams
            seed_all(t.seed + 1000 * dev.rank + r.start)
        say(dev, f"resumed {r.run} after epoch {r.start}")
    else:
        if t.init_from:
            src = resolve_path(t.init_from)
            init = load_checkpoint(src)
            check_same_model(init, cfg.model.arch, len(r.classes), cfg.data.layout, src)
            load_state(r.net, init, src)
            say(dev, f"weights from {src} (epoch {init.get('epoch')})")
        seed_all(t.seed + dev.rank)  # model init above used `seed` on every rank (DDP syncs it)
        if dev.main:
            from posrec.config import save_config

            save_config(cfg, r.run / "config.yaml")
            say(dev, _describe(r))
    if dev.main:
        _write_metrics_csv(r.run / "metrics.csv", r.history)


def _describe(r: _Run) -> str:
    val = r.data["validation"]
    where = "no validation" if val is None else (
        f"{len(r.val[0])} val clips ({val['split']}"
        + (f", carved from {val['carved_from']} by {val['grouped_by']})" if "carved_from" in val
           else ")"))
    return (f"{r.cfg.model.arch} ({sum(p.numel() for p in r.net.parameters()):,} params) on "
            f"{r.cfg.data.layout}: {len(r.train_dl.dataset.ds)} train clips, {where}, "
            f"{len(r.classes)} classes, {r.dev.world} process(es) on {r.dev.device}, "
            f"{torch.get_num_threads()} threads")


def _epoch(r: _Run, epoch: int) -> dict:
    """Train one epoch, validate when due, write the checkpoints and metrics; its csv row."""
    t0 = time.perf_counter()
    t = r.cfg.train
    r.sampler.set_epoch(epoch)
    lr = r.opt.param_groups[0]["lr"]
    stats = _train_epoch(r, epoch)
    val = {"val_top1": None, "val_top5": None}
    if r.val is not None and ((epoch + 1) % t.val_interval == 0 or epoch + 1 == t.epochs):
        val_ds, val_dl = r.val
        s, y = predict(r.model, val_dl, r.dev, len(val_ds), len(r.classes), "val", t.amp)
        val = {"val_top1": topk(s, y, 1), "val_top5": topk(s, y, 5)}
    row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "train_acc": stats["train_acc"],
           **val, "lr": lr, "samples_per_s": stats["samples_per_s"],
           "time": time.perf_counter() - t0}
    r.history.append(row)
    improved = val["val_top1"] is not None and val["val_top1"] > r.best["best_val_top1"]
    if improved:
        r.best = {"best_epoch": epoch + 1, "best_val_top1": val["val_top1"]}
    rngs = r.dev.gather(rng_state())
    if r.dev.main:
        _save_epoch(r, row, rngs, improved)
        shown = "" if val["val_top1"] is None else \
            f"val top1 {val['val_top1']:.4f} top5 {val['val_top5']:.4f} "
        say(r.dev, f"epoch {epoch + 1}/{t.epochs} loss {row['train_loss']:.4f} "
                   f"acc {row['train_acc']:.4f} {shown}lr {lr:.4g} "
                   f"{row['samples_per_s']:.1f} samples/s {row['time']:.1f} s, "
                   f"peak memory {peak_memory_mb(r.dev):.0f} MB")
    r.dev.barrier()
    return row


def _save_epoch(r: _Run, row: dict, rngs: list, improved: bool) -> None:
    cfg = r.cfg
    state = {"state_dict": r.net.state_dict(), "arch": cfg.model.arch,
             "flags": dict(cfg.model.flags), "num_classes": len(r.classes),
             "class_names": list(r.classes), "in_channels": r.in_channels,
             "layout": cfg.data.layout, "num_person": cfg.model.num_person,
             "pipeline": r.spec.to_dict(), "config": config_to_dict(cfg), "metrics": dict(row),
             "epoch": row["epoch"], **r.best, "history": r.history,
             "optimizer": r.opt.state_dict(), "scheduler": r.sched.state_dict(), "rng": rngs}
    if improved:
        save_checkpoint({**state, "selected_on": best_selection(
            r.data["validation"], row["epoch"], row["val_top1"])}, r.run / "best.pt")
    save_checkpoint({**state, "selected_on": {**LAST_EPOCH, "epoch": row["epoch"]}},
                    r.run / "last.pt")
    _write_metrics_csv(r.run / "metrics.csv", r.history)


def _train_epoch(r: _Run, epoch: int) -> dict:
    cfg, dev, model = r.cfg, r.dev, r.model
    model.train()
    loss_sum = correct = n = 0.0
    t0 = time.perf_counter()
    bar = progress(r.train_dl, dev, len(r.train_dl), f"epoch {epoch + 1}/{cfg.train.epochs}")
    for x, y, _ in bar:
        x = x[:, 0].to(dev.device, non_blocking=True)  # (N, 1, M, T, V, C) -> one clip each
        y = y.to(dev.device, non_blocking=True)
        with autocast(cfg.train.amp, dev):
            logits = model(x)
        loss = r.crit(logits.float(), y)
        r.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        r.opt.step()
        r.sched.step()
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


def _finish(r: _Run) -> dict:
    """Learning curves, the final metrics and, with ``train.final_test``, the test result."""
    from posrec import viz

    cfg, dev, t = r.cfg, r.dev, r.cfg.train
    if dev.main and r.history:
        viz.plot_learning_curves(r.history, r.run / "curves.png")
    row = r.history[-1] if r.history else {}
    out = {k: row.get(k) for k in ("epoch", "train_loss", "train_acc", "val_top1", "val_top5")}
    out.update(r.best)
    if not t.final_test:
        return out
    dev.barrier()
    which = r.run / ("best.pt" if t.test_checkpoint == "best" and r.best["best_epoch"] else
                     "last.pt")
    res_dir = default_out_dir(which, cfg.data.test_split)
    # a finished run that is resumed keeps the final test it already has
    done = dev.on_main(lambda: _earlier_test(res_dir, which, row.get("epoch"))) \
        if r.start >= t.epochs else None
    res = done if done is not None else evaluate(cfg, which, res_dir, _dev=dev, _data=r.data)
    out.update({f"test_{k}": res[k] for k in ("top1", "top5", "mean_class_acc")})
    return out


def _earlier_test(res_dir: Path, which: Path, epoch: int | None) -> dict | None:
    """The final test of a finished run that was resumed: its metrics.json, if it scored this
    checkpoint after this many epochs."""
    path = res_dir / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    last = m.get("selected_on", {}).get("rule") == LAST_EPOCH["rule"]
    if m.get("checkpoint") == str(which) and (not last or m.get("epoch") == epoch):
        return m
    return None


def _build_model(cfg: Config, num_classes: int, in_channels: int) -> nn.Module:
    from posrec.models import build_model

    return build_model(cfg.model.arch, num_classes, cfg.data.layout, in_channels=in_channels,
                       num_person=cfg.model.num_person, **cfg.model.flags)


def _in_channels(cfg: Config, ds) -> int:
    c = int(ds[0][0].shape[-1])
    if cfg.model.in_channels not in (None, c):
        raise PosrecError(f"model.in_channels is {cfg.model.in_channels} but the data with "
                          f"feats {cfg.data.feats} has {c} channels")
    return c


def lr_schedule(cfg: Config, iters_per_epoch: int) -> Callable[[int], float]:
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


# --------------------------------------------------------------------------------------------
# Run directory


def _write_metrics_csv(path: Path, history: list[dict]) -> None:
    # Epochs without validation leave val_top1/val_top5 empty (None), not "nan".
    with atomic_write(path, "w") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(history)


def _setup_logging(run: Path, dev: Dist) -> logging.Handler | None:
    if not dev.main:
        return None
    h = logging.FileHandler(run / "train.log", encoding="utf-8")
    h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(h)
    log.setLevel(logging.INFO)
    return h


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
