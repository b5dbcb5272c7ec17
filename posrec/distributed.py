"""One process or several under torchrun: rank, device, collectives, samplers and RNG state.

With ``WORLD_SIZE`` unset (one process) every collective below is the identity, so training and
evaluation run the same code alone and under DDP.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from posrec.errors import PosrecError


class Dist:
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


class ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...`` in order: an evaluation shard with no padding, so
    gathered scores need no de-duplication."""

    def __init__(self, n: int, rank: int, world: int):
        self.idx = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.idx)

    def __len__(self) -> int:
        return len(self.idx)


class Indexed(Dataset):
    """``(x, label, index)`` samples, so evaluation shards can be put back in order; ``repeat``
    passes over ``ds`` per epoch (PYSKL's RepeatDataset)."""

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


def make_loader(ds: Dataset, sampler: Sampler, batch_size: int, num_workers: int, dev: Dist,
                repeat: int = 1) -> DataLoader:
    """Batches of ``(x, label, index)`` from ``ds`` in ``sampler``'s order."""
    return DataLoader(Indexed(ds, repeat), batch_size=batch_size, sampler=sampler,
                      num_workers=num_workers,
                      worker_init_fn=_worker_init if num_workers else None,
                      pin_memory=dev.device.type == "cuda", drop_last=False)


# --------------------------------------------------------------------------------------------
# RNG state as tensors and lists (checkpoints load with weights_only=True)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    ver, pstate, pgauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(gauss)],
        "python": [ver, list(pstate), pgauss],
    }


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    kind, keys, pos, has_gauss, gauss = s["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    ver, pstate, pgauss = s["python"]
    random.setstate((ver, tuple(pstate), pgauss))


def peak_memory_mb(dev: Dist) -> float:
    """Peak resident memory of this process so far (MB); on CUDA, peak allocated GPU memory."""
    if dev.device.type == "cuda":
        return torch.cuda.max_memory_allocated(dev.device) / 1e6
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KB on Linux


# --------------------------------------------------------------------------------------------
# Output on rank 0: progress bars and log lines

log = logging.getLogger("posrec.train")


def progress(it, dev: Dist, total: int, desc: str):
    """A tqdm bar over ``it``, shown on rank 0 only."""
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, disable=not dev.main, leave=False, mininterval=1.0,
                dynamic_ncols=True)


def say(dev: Dist, msg: str) -> None:
    """Log a line (to train.log while a run is open) and show it above the progress bars
    (rank 0 only)."""
    if dev.main:
        from tqdm.auto import tqdm

        log.info(msg)
        tqdm.write(msg)
