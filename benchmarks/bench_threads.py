"""How training speed depends on torch's thread count and OpenMP's wait policy, idle and beside a
busy neighbour: the measurement behind ``train()``'s default thread count.

    python benchmarks/bench_threads.py [--steps 15] [--threads 1 2] [--no-neighbour]

Each setting runs in a fresh process (OpenMP reads ``OMP_WAIT_POLICY`` when it starts): ST-GCN++
at full width on the CI slice's input shape (batch 16, 1 person, 32 frames, Penn Action's 13
joints, 3 channels, 15 classes), ``--steps`` training steps (forward, backward, SGD) after two
warm-up steps. The input is random with that shape: the cost of these dense convolutions does not
depend on the values. "neighbour" starts one more process that keeps one core busy (a pure-Python
loop), the situation of a test suite or a second training sharing the machine. The reference is
1 thread, default policy, measured in the same run; the load average before each row says what
else was running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(threads: int, steps: int) -> dict:
    """Time ``steps`` training steps in this process; seconds per step."""
    sys.path.insert(0, str(ROOT))
    import torch

    from posrec.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("stgcn++", 15, "penn13", in_channels=3, num_person=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(16, 1, 32, 13, 3), torch.randint(0, 15, (16,))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "max": max(times), "total": sum(times)}


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(threads: int, policy: str | None, neighbour: bool, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    load = os.getloadavg()[0]
    busy = _busy() if neighbour else None
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", str(threads), "--steps",
                              str(steps)], env=env, capture_output=True, text=True, check=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-neighbour", action="store_true", help="skip the busy-neighbour rows")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.steps)))
        return
    rows = []
    for neighbour in (False,) if args.no_neighbour else (False, True):
        for policy in (None, "PASSIVE"):
            for n in args.threads:
                rows.append((n, policy or "default", neighbour,
                             measure(n, policy, neighbour, args.steps)))
    ref = {nb: r for n, p, nb, r in rows if n == 1 and p == "default"}
    print(f"ST-GCN++, CI-slice batch (16 x 1 x 32 x 13 x 3), {args.steps} training steps, "
          f"{os.cpu_count()} CPUs")
    print("| threads | OMP_WAIT_POLICY | neighbour | load before | median s/step | slowest s/step "
          "| total s | vs 1 thread (same neighbour) |")
    print("|---|---|---|---|---|---|---|---|")
    for n, policy, nb, r in rows:
        print(f"| {n} | {policy} | {'1 busy core' if nb else 'none'} | {r['load']:.1f} | "
              f"{r['median']:.3f} | {r['max']:.3f} | {r['total']:.1f} | "
              f"{ref[nb]['total'] / r['total']:.2f}x |")


if __name__ == "__main__":
    main()
