"""How fast the reader trains, and how much of a step is synthesis: evidence for --field-views.

For each ``--field-views`` setting, runs the trainer's own loop (its loader with synthesis
worker processes, bfloat16 where the CPU has it, one torch thread) and times steps 150-400 of
64 inputs, as the trainer does when it plans a ``--minutes`` run.  The floor, measured in the
same run, is the network alone: forward, backward and optimiser step on one batch kept in
memory (the same ``training.train_reader.train_step``).  Prints seconds per step, the ratio
to the floor, and inputs per second.

    .venv/bin/python bench/train_speed.py [--views 1 2] [--workers 2] [--data-dir ../shared/data]

Needs the ``[train]`` extra.  Both cores are used; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from grader import handwriting as hw  # noqa: E402
from training import train_reader as tr  # noqa: E402
from training.model import ReaderNet  # noqa: E402

BATCH = 64
TIMED = (tr.PLAN_FROM, tr.PLAN_AT)


def new_model() -> tuple[ReaderNet, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = tr.in_memory_format(ReaderNet(), torch.channels_last)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def seconds_per_step(views: int, workers: int, data_dir: Path, precision: str) -> float:
    """Steps 150-400 of a fresh run with ``views`` inputs per synthesised field."""
    data = tr.SynthFields(data_dir, "train", 0, tr.STREAM_TRAIN, repeats=views,
                          poor_capture_share=tr.TRAINING_POOR_CAPTURE_SHARE)
    batches = tr.loader(data, 0, BATCH, workers)
    model, opt = new_model()
    start = 0.0
    for i in range(TIMED[1]):
        if i == TIMED[0]:
            start = time.perf_counter()
        tr.train_step(model, opt, next(batches), precision)
    return (time.perf_counter() - start) / (TIMED[1] - TIMED[0])


def network_floor(data_dir: Path, precision: str, repeats: int = 5) -> float:
    """The network's step on one in-memory batch: what a step costs with free synthesis."""
    data = tr.SynthFields(data_dir, "train", 0, tr.STREAM_TRAIN)
    batch = tr.collate([data[i] for i in range(BATCH)])
    model, opt = new_model()
    for _ in range(10):  # warm-up: oneDNN picks its kernels on the first calls
        tr.train_step(model, opt, batch, precision)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(20):
            tr.train_step(model, opt, batch, precision)
        times.append((time.perf_counter() - start) / 20)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--views", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=hw.default_data_dir())
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    precision = "bf16" if tr.bf16_supported() else "fp32"
    print(f"training step of {BATCH} inputs, {precision}, 1 torch thread, "
          f"{args.workers} synthesis processes, steps {TIMED[0]}-{TIMED[1]}")
    print(f"{'field views':>11} {'s/step':>8} {'inputs/s':>9} {'fields/s':>9} {'/ floor':>8}")
    per_step = {v: seconds_per_step(v, args.workers, args.data_dir, precision) for v in args.views}
    # Last: it synthesises in this process, and synthesis workers forked after OpenCV's thread
    # pool has run here would hang.
    floor = network_floor(args.data_dir, precision)
    for views, seconds in per_step.items():
        print(f"{views:>11} {seconds:8.3f} {BATCH / seconds:9.0f} "
              f"{BATCH / views / seconds:9.0f} {seconds / floor:7.2f}x")
    print(f"{'floor':>11} {floor:8.3f} {BATCH / floor:9.0f} {'':>9} {1:7.2f}x"
          "   (network alone, one batch in memory)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
