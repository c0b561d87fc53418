"""Train the handwritten number reader, calibrate it, and export it to ONNX.

    python -m training.train_reader --data-dir ../shared/data --out grader/models \
        --seed 0 --minutes 32

Every training field is synthesised on the fly from ``(seed, index)`` (see training.synth), so a
run is reproducible from its seed and step count (``--steps``; with ``--minutes`` the step
count is fixed from the measured speed after the first steps and written to reader.json).
Calibration and the review threshold use the "val" split (held out from the MNIST training
files); the MNIST test split is never touched here, only by bench/reader.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from grader import handwriting as hw
from grader import read as rd
from training.model import ReaderNet
from training.onnx_weights import ExportedWeightsError, load_exported
from training.synth import TRAINING_POOR_CAPTURE_SHARE, Synthesizer, make_synthesizer

LOG = logging.getLogger("train_reader")
ModuleT = TypeVar("ModuleT", bound=nn.Module)
MEAN, STD = 0.08, 0.22  # of preprocessed ink; fixed so that runtime needs no statistics
# Peak learning rates: from random weights, and from an exported reader, which a higher rate
# first throws off what it has learnt: from reader 1.6, 3e-4 raised the CTC loss on 512 new
# training fields from 0.121 to 0.147 in 1000 steps, 1e-4 to 0.134.
FRESH_LR, FURTHER_LR = 2e-3, 1e-4
STREAM_TRAIN, STREAM_VAL = 0, 1  # bench/reader.py uses stream 2 on the test split
# Bumped when the training recipe or the preprocessing changes; the date follows it.
MODEL_SERIES = "1.7"


Field = tuple[np.ndarray, np.ndarray, int, str]  # input, ink geometry, status index, text


class SynthFields(Dataset[Field]):
    """Field ``i`` of a stream: preprocessed input ``(32, 128)`` float32, where its ink lay in
    the crop (:func:`grader.read.ink_geometry`), status index, text."""

    def __init__(
        self,
        data_dir: Path | None,
        split: str,
        seed: int,
        stream: int,
        views: int = 1,
        repeats: int = 1,
        **kw: Any,
    ):
        self.data_dir, self.split, self.seed, self.stream, self.kw = (
            data_dir,
            split,
            seed,
            stream,
            kw,
        )
        self.views = views  # above 1, input is (views, 32, 128): the reader's views of it
        # Above 1 (training only): input is (repeats, 32, 128), the first view and others
        # drawn at random, so one synthesised field trains the framings the reader averages.
        self.repeats = repeats
        self._synth: Synthesizer | None = None

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, index: int) -> Field:
        if self._synth is None:  # built in the worker process, not pickled to it
            self._synth = make_synthesizer(self.data_dir, self.split, **self.kw)
        rng = np.random.default_rng([self.seed, self.stream, index])
        sample = self._synth.sample(rng)
        ink = rd.clean_ink(sample.image)
        views = self._views_of(rng)
        x = (np.stack([rd.frame_ink(ink, v) for v in views]) - MEAN) / STD
        if len(views) == 1:
            x = x[0]
        status = rd.STATUSES.index(sample.status)
        return x.astype(np.float32), rd.ink_geometry(ink), status, sample.text

    def _views_of(self, rng: np.random.Generator) -> list[rd.View]:
        if self.repeats == 1:
            return list(rd.VIEWS[: self.views])
        others = rng.permutation(len(rd.VIEWS) - 1)[: self.repeats - 1] + 1
        return [rd.VIEWS[0], *(rd.VIEWS[int(i)] for i in others)]


def collate(batch: list[Field]) -> dict[str, Any]:
    """Stack a batch; CTC targets of crossed-out fields are dropped (their loss is masked)."""
    xs, geometry, statuses, texts = zip(*batch, strict=True)
    targets: list[int] = []
    lengths = []
    for status, text in zip(statuses, texts, strict=True):
        label = text if rd.STATUSES[status] == "number" else ""
        targets.extend(hw.ALPHABET.index(c) + 1 for c in label)
        lengths.append(len(label))
    return {
        "x": torch.from_numpy(np.stack(xs)[:, None]),
        "geometry": torch.from_numpy(np.stack(geometry)),
        "status": torch.tensor(statuses, dtype=torch.long),
        "targets": torch.tensor(targets, dtype=torch.long),
        "lengths": torch.tensor(lengths, dtype=torch.long),
        "ctc_mask": torch.tensor([rd.STATUSES[s] != "crossed_out" for s in statuses]),
        "texts": list(texts),
    }


def collate_repeated(batch: list[Field]) -> dict[str, Any]:
    """:func:`collate` for fields framed several ways: each view becomes its own input."""
    flat = [(x, g, status, text) for views, g, status, text in batch for x in views]
    return collate(flat)


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def loader(dataset: SynthFields, start: int, batch: int, workers: int) -> Iterator[dict[str, Any]]:
    """Batches of fields ``start, start+1, ...`` in order, so a run is reproducible.

    ``batch`` counts inputs: with ``dataset.repeats`` views per field, a batch holds
    ``batch // repeats`` fields.
    """
    sampler = range(start, start + 10**9)
    dl = DataLoader(
        dataset,
        batch_size=batch // dataset.repeats,
        sampler=sampler,
        collate_fn=collate_repeated if dataset.repeats > 1 else collate,
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=6 if workers else None,
        persistent_workers=bool(workers),
    )
    return iter(dl)


# x86 flags of native bfloat16 arithmetic.  oneDNN also reports bfloat16 support on AVX-512
# cores without them and emulates it: on such a 2-core Xeon the network's step took 0.77 s in
# bf16 against 0.32 s in fp32 (see docs/benchmarks.md, "Training speed").
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The CPU feature flags Linux reports for x86 cores, or None where it reports none."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return None


def bf16_supported(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 natively (else autocast would only slow it down).

    ``flags``: the CPU's feature flags (default: read from ``/proc/cpuinfo``).  Where there
    are none (another OS, or an ARM core), oneDNN's own answer decides.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    if flags is None:
        flags = cpu_flags()
    if flags is not None:
        return bool(flags & NATIVE_BF16_FLAGS)
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def emulated_precision_warning(precision: str | None, device: str, native: bool) -> str | None:
    """What to tell someone who asked for bf16 on a CPU that would only emulate it, else None.

    ``native``: whether the CPU multiplies bfloat16 natively (:func:`bf16_supported`).
    Emulated, a step took about 5 s on a 2-core AVX2 EPYC against 0.55 s in fp32 there, so
    a command copied from a machine with native bfloat16 would run for more than a day.
    """
    if precision != "bf16" or device != "cpu" or native:
        return None
    return (
        "this CPU has no native bfloat16 (avx512_bf16 or amx_bf16): --precision bf16 runs "
        "emulated, several times slower than fp32; leave --precision out to get fp32 here"
    )


def in_memory_format(model: ModuleT, memory_format: torch.memory_format) -> ModuleT:
    """The model with its 4-D weights in ``memory_format`` (``Module.to`` is typed without it)."""
    return cast(ModuleT, cast(Any, model).to(memory_format=memory_format))


def losses(
    model: nn.Module, batch: dict[str, Any], precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC loss (mean over fields with a CTC target) and status cross-entropy.

    With ``precision`` "bf16" the network runs under bfloat16 autocast (weights and the
    optimiser stay float32); the losses are always computed in float32.
    """
    device = next(model.parameters()).device
    x = batch["x"].to(device).contiguous(memory_format=torch.channels_last)
    geometry = batch["geometry"].to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        ctc_logits, status_logits = model(x, geometry)
    ctc_logits, status_logits = ctc_logits.float(), status_logits.float()
    log_probs = ctc_logits.log_softmax(2).transpose(0, 1)  # (T, N, C)
    n, t = ctc_logits.shape[0], ctc_logits.shape[1]
    per_field = nn.functional.ctc_loss(
        log_probs,
        batch["targets"].to(device),
        torch.full((n,), t, dtype=torch.long, device=device),
        batch["lengths"].to(device),
        blank=0,
        reduction="none",
        zero_infinity=True,
    )
    mask = batch["ctc_mask"].to(device).float()
    ctc = (per_field * mask).sum() / mask.sum().clamp(min=1.0)
    return ctc, nn.functional.cross_entropy(status_logits, batch["status"].to(device))


def train_step(
    model: nn.Module, opt: torch.optim.Optimizer, batch: dict[str, Any], precision: str
) -> tuple[float, float]:
    """One optimiser step on ``batch``; returns its CTC and status losses."""
    ctc, ce = losses(model, batch, precision)
    opt.zero_grad()
    (ctc + ce).backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return ctc.item(), ce.item()


def lr_at(step: int, total: int, peak: float, warmup: int = 300) -> float:
    """Linear warm-up, then cosine decay to 2 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def fixed_set(dataset: SynthFields, count: int, workers: int) -> dict[str, Any]:
    """The first ``count`` fields of a stream as one in-memory batch."""
    parts: list[dict[str, Any]] = []
    it = loader(dataset, 0, 250, workers)
    while sum(len(p["texts"]) for p in parts) < count:
        parts.append(next(it))
    return {
        "x": torch.cat([p["x"] for p in parts])[:count],
        "geometry": torch.cat([p["geometry"] for p in parts])[:count],
        "status": torch.cat([p["status"] for p in parts])[:count],
        "texts": [t for p in parts for t in p["texts"]][:count],
    }


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, geometry: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Logits for a stack of inputs and their ink geometry, in chunks: ``(N, T, C)`` and
    ``(N, 4)`` numpy arrays."""
    model.eval()
    device = next(model.parameters()).device
    ctc, status = [], []
    for i in range(0, len(x), 500):
        c, s = model(x[i : i + 500].to(device), geometry[i : i + 500].to(device))
        ctc.append(c.float().cpu().numpy())
        status.append(s.float().cpu().numpy())
    model.train()
    return np.concatenate(ctc), np.concatenate(status)


def truth(fields: dict[str, Any]) -> list[str | None]:
    """The value each field should read as: the text of a number, None otherwise."""
    return [
        text if rd.STATUSES[int(s)] == "number" else None
        for s, text in zip(fields["status"], fields["texts"], strict=True)
    ]


def field_accuracy(ctc: np.ndarray, status: np.ndarray, expected: list[str | None]) -> float:
    """Share of fields whose decoded value (temperature 1) equals the expected one."""
    hits = sum(
        int(rd.decide(ctc[i][None], status[i][None], hw.ALPHABET).text == expected[i])
        for i in range(len(ctc))
    )
    return hits / max(1, len(ctc))


def fit_temperature(nll: Any, grid: np.ndarray) -> float:
    """The temperature on ``grid`` with the lowest negative log-likelihood ``nll(T)``."""
    scores = [float(nll(t)) for t in grid]
    return float(grid[int(np.argmin(scores))])


def calibrate(ctc: np.ndarray, status: np.ndarray, fields: dict[str, Any]) -> tuple[float, float]:
    """Temperatures for the CTC and status heads minimising NLL on the validation fields."""
    s_logits = torch.from_numpy(status)
    s_true = fields["status"]
    t_status = fit_temperature(
        lambda t: nn.functional.cross_entropy(s_logits / t, s_true), np.arange(0.5, 4.01, 0.05)
    )
    numbers = [i for i, s in enumerate(s_true) if rd.STATUSES[int(s)] == "number"]
    logits = torch.from_numpy(ctc[numbers])
    targets = torch.tensor(
        [hw.ALPHABET.index(c) + 1 for i in numbers for c in fields["texts"][i]], dtype=torch.long
    )
    lengths = torch.tensor([len(fields["texts"][i]) for i in numbers], dtype=torch.long)
    frames = torch.full((len(numbers),), logits.shape[1], dtype=torch.long)

    def ctc_nll(t: float) -> torch.Tensor:
        lp = (logits / t).log_softmax(2).transpose(0, 1)
        return nn.functional.ctc_loss(lp, targets, frames, lengths, reduction="sum")

    t_ctc = fit_temperature(ctc_nll, np.arange(0.5, 4.01, 0.05))
    return t_ctc, t_status


def review_curve(confidence: np.ndarray, correct: np.ndarray) -> list[dict[str, float]]:
    """Accepted error and review share for a range of thresholds (sorted by threshold)."""
    rows = []
    for t in np.unique(np.concatenate([confidence, np.linspace(0, 1, 101)])):
        accepted = confidence >= t
        n_acc = int(accepted.sum())
        errors = int((~correct[accepted]).sum())
        rows.append(
            {
                "threshold": float(t),
                "review_share": 1.0 - n_acc / len(confidence),
                "accepted_error": errors / n_acc if n_acc else 0.0,
                "accepted_errors": errors,
            }
        )
    return rows


def choose_threshold(curve: list[dict[str, float]], target: float) -> float:
    """The lowest threshold whose accepted error is at most ``target`` (fewest reviews)."""
    ok = [r["threshold"] for r in curve if r["accepted_error"] <= target]
    return min(ok) if ok else 1.0


def export_onnx(model: nn.Module, path: Path) -> None:
    """Write the model as ONNX with a dynamic batch dimension."""
    model.eval()
    model = in_memory_format(model, torch.contiguous_format)
    dummy = torch.zeros(2, 1, rd.INPUT_HEIGHT, rd.INPUT_WIDTH)
    geometry = torch.zeros(2, rd.GEOMETRY_SIZE) if cast(Any, model).n_geometry else None
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (dynamo=False): it needs no extra
        # packages and gives a plain graph onnxruntime and OpenCV's dnn both load.
        warnings.simplefilter("ignore", DeprecationWarning)
        # Tracing warns about the LSTM's own shape checks, which do not depend on the batch.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The LSTM starts from zero states, not state inputs, so any batch size runs
        # (tests/test_reader.py compares batched and single reads).
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        _export(model, dummy, geometry, path)


def _export(
    model: nn.Module, dummy: torch.Tensor, geometry: torch.Tensor | None, path: Path
) -> None:
    inputs = {"image": dummy} if geometry is None else {"image": dummy, "geometry": geometry}
    torch.onnx.export(
        model,
        tuple(inputs.values()),
        str(path),
        input_names=list(inputs),
        output_names=["ctc_logits", "status_logits"],
        dynamic_axes={
            **{name: {0: "batch"} for name in inputs},
            "ctc_logits": {0: "batch"},
            "status_logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )


def channel_list(text: str) -> tuple[int, int, int, int, int]:
    """``"24,48,96,96,128"`` -> the five convolution widths."""
    widths = [int(part) for part in text.split(",")]
    if len(widths) != 5 or min(widths) < 1:
        raise argparse.ArgumentTypeError("five positive channel counts, e.g. 24,48,96,96,128")
    a, b, c, d, e = widths
    return a, b, c, d, e


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=hw.default_data_dir())
    p.add_argument("--out", type=Path, default=Path("grader/models"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    p.add_argument("--steps", type=int, default=0, help="fixed step count (overrides --minutes)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"peak learning rate (default: {FRESH_LR:g}; {FURTHER_LR:g} with --start-from)",
    )
    p.add_argument(
        "--channels",
        type=channel_list,
        default=(24, 48, 96, 96, 128),
        help="channels of the five convolution layers, comma-separated",
    )
    p.add_argument("--hidden", type=int, default=96, help="LSTM units per direction")
    # One compute thread and two synthesis processes fill two cores: in bf16 a step computes
    # in about half the time one process takes to synthesise its batch. Two compute threads
    # made OpenMP spin against the synthesis workers and ran several times slower.
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    # The same recipe and field stream on a CUDA GPU, for workstations that have one; the
    # weights then differ from a CPU run's in rounding, not in what the network is shown.
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train")
    p.add_argument("--workers", type=int, default=2, help="data synthesis processes")
    p.add_argument(
        "--precision",
        choices=("bf16", "fp32"),
        default=None,
        help="training arithmetic (default: bf16 where the CPU has it, about 2-3x faster)",
    )
    p.add_argument("--val-fields", type=int, default=6000)
    p.add_argument(
        "--poor-capture",
        type=float,
        default=TRAINING_POOR_CAPTURE_SHARE,
        help="share of fields photographed like the hard tier (blurred, 2-4 px/mm)",
    )
    # Model 1.2 was trained with 0.5: every digit of a number not wholly procedural had an even
    # chance of being procedural.  1.3 sees MNIST digits only there (0), twice the real
    # handwriting for the same steps.  Validation and calibration always use MNIST digits
    # only, like the benchmark, whatever this is.
    p.add_argument(
        "--digit-strokes",
        type=float,
        default=0.0,
        help="in numbers written with MNIST, the share of digits drawn procedurally instead",
    )
    # Model 1.5: 0.5.  In two of three runs warped digits made the confidence tell right
    # from wrong readings better (a fifth fewer validation fields to review at the same
    # accepted error), with lone digits read as well; the third reviewed as many as without
    # and read synthetic fields a little worse.  Two unwarped seeds of 1.4's recipe reviewed
    # the same share, so the gain is larger than a seed's spread (see the model card).
    p.add_argument(
        "--digit-warp",
        type=float,
        default=0.5,
        help="share of MNIST digits elastically warped (see training.synth.warp_glyph)",
    )
    # Model 1.5 called four of the 5 000 lone validation digits crossed out that were plainly
    # sevens with a barred stem (bench/digit_errors.py).  0 in model 1.5: a run with 0.2 and
    # --decimal-commas 0.2 read barred sevens right and lone digits worse (docs/benchmarks.md).
    p.add_argument(
        "--barred-sevens",
        type=float,
        default=0.0,
        help="share of MNIST sevens drawn with a bar through the stem "
        "(see training.synth.bar_seven)",
    )
    # Model 1.5 read 6 of 565 lone validation "1"s as blank boxes, most of them thin strokes
    # (training.synth.thin_stroke); every run with another option called more of them blank
    # (9-16).  0 in 1.5: a half-length run with 0.3 still called thinned ones blank and
    # reviewed a third more calibration fields (docs/benchmarks.md, "Thinner ones").
    p.add_argument(
        "--thin-ones",
        type=float,
        default=0.0,
        help="share of MNIST ones drawn with a thinner stroke (see training.synth.thin_stroke)",
    )
    # Students taught the decimal comma write "3,5" for 3.5 even where the sheet asks for a
    # point; model 1.5, which never saw a comma, sends most such numbers to review.  Labelled
    # as the point.  0 in model 1.5 (measured with --barred-sevens: docs/benchmarks.md).
    p.add_argument(
        "--decimal-commas",
        type=float,
        default=0.0,
        help="share of numbers with a decimal point written with a comma instead "
        "(read as '.'; see training.synth.Synthesizer)",
    )
    # Model 1.5 took numbers in faint pencil for smudges with full confidence; a run-time rule
    # (grader.read.stretched_ink) sends them to review.  Not yet trained with (0 in 1.5).
    p.add_argument(
        "--faint-numbers",
        type=float,
        default=0.0,
        help="share of number fields written in faint pencil "
        "(see training.synth.FAINT_NUMBER_DARKNESS)",
    )
    # With 1 the network also reads where the ink lay in the crop (grader.read.ink_geometry):
    # framed, a lone "1" looks like a piece of a box side left in a blank field.  0 in 1.5;
    # one run with 1 called more lone "1"s blank, not fewer (their strokes are too thin, not
    # misplaced) and reviewed fewer fields (docs/benchmarks.md, "Where the ink lay"); a second,
    # with commas, reviewed as many as 1.5 ("Ink geometry with decimal commas").
    p.add_argument(
        "--ink-geometry",
        type=int,
        default=0,
        choices=(0, 1),
        help="also give the network where the ink lay in the crop before framing "
        "(a second ONNX input)",
    )
    # With one view per field, synthesis held the trainer at 0.25 s per step against 0.15 s
    # for the network alone (bench/train_speed.py); framing each field two ways halves it per
    # input, and trains the framings the reader averages at run time.  Model 1.4: 2.
    p.add_argument(
        "--field-views",
        type=int,
        default=2,
        choices=range(1, len(rd.VIEWS) + 1),
        help="inputs made from each synthesised field: its first view plus others at random "
        "(all in the same batch)",
    )
    # An exponential moving average of the weights (Polyak averaging) is what gets calibrated
    # and exported when this is above 0; the checkpoint keeps the raw weights beside it, so
    # `--export-only --ema 0` exports those for comparison.  With 0.9995 a run of about 20 000
    # steps ends averaging over roughly its last 2000, where the learning rate is already low.
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="decay of a moving average of the weights exported instead of the last ones "
        "(0: off; e.g. 0.9995)",
    )
    p.add_argument("--target-error", type=float, default=1 / 500)
    p.add_argument(
        "--views",
        type=int,
        default=len(rd.VIEWS),
        choices=range(1, len(rd.VIEWS) + 1),
        help="views of each field the reader averages (calibrated for that many)",
    )
    # A school without a fast CPU can still teach the shipped reader new handwriting: a full
    # run takes hours on a CPU without bf16, training an exported model further fits in one.
    p.add_argument(
        "--start-from",
        type=Path,
        default=None,
        help="train further from the exported reader in this folder (reader.onnx and "
        "reader.json) instead of from random weights",
    )
    p.add_argument("--checkpoint", type=Path, default=Path("build/reader.pt"))
    p.add_argument("--export-only", action="store_true", help="calibrate and export a checkpoint")
    p.add_argument(
        "--recalibrate",
        action="store_true",
        help="fit the temperatures and threshold of the model in --out again (no training)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on from --checkpoint (same seed, batch, lr, precision); a larger --steps "
        "extends the run, stretching the learning-rate schedule from there",
    )
    return p.parse_args(argv)


# What a resumed run must share with the run that wrote its checkpoint.
RECIPE_KEYS = (
    "seed", "batch", "lr", "precision", "poor_capture", "digit_strokes", "digit_warp",
    "channels", "hidden", "field_views", "ema", "barred_sevens", "decimal_commas",
    "faint_numbers", "ink_geometry", "thin_ones", "start_from",
)
# The value of each recipe option that checkpoints written before it existed were trained with.
RECIPE_DEFAULTS_BEFORE = {
    "digit_warp": 0.0, "field_views": 1, "ema": 0.0, "barred_sevens": 0.0, "decimal_commas": 0.0,
    "faint_numbers": 0.0, "ink_geometry": 0, "thin_ones": 0.0, "start_from": None,
}


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The run's recipe as its checkpoint records it (paths as text, which loads safely)."""
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in ((key, getattr(args, key)) for key in RECIPE_KEYS)
    }


# With --minutes, the step count is fixed from the speed measured over these steps.  Not the
# first ones: the synthesis processes fill their queues while the network starts, so early
# steps run faster than the run will (steps 50-150 promised 0.236 s/step on a run that then
# took 0.30).
PLAN_FROM, PLAN_AT = 150, 400


@dataclass
class Progress:
    """Where training is: steps done, steps planned, minutes of training spent up to ``step``,
    and the legs the run was trained in so far (a resumed run may move to another device)."""

    step: int = 0
    total: int = 10**9
    minutes: float = 0.0
    legs: tuple[dict[str, Any], ...] = ()


class WeightAverage:
    """An exponential moving average of a model's weights and batch-norm statistics.

    The decay is at most ``(1 + step) / (10 + step)``, so the average spans about the last
    ninth of the steps taken until that reaches ``decay`` (at step ``9 / (1 - decay)``, 18 000
    for 0.9995), and never holds on to the untrained initial weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        weight = min(self.decay, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            kept = self.state[key]
            if kept.is_floating_point():
                kept.mul_(weight).add_(value.detach(), alpha=1 - weight)
            else:  # counters such as batch-norm's num_batches_tracked
                kept.copy_(value)


def leg(device: str, first_step: int, last_step: int, minutes: float) -> dict[str, Any]:
    """One stretch of a run on one device: steps ``first_step..last_step`` (from 1)."""
    return {"device": device, "first_step": first_step, "last_step": last_step,
            "minutes": round(minutes, 1)}


def train(args: argparse.Namespace, model: nn.Module) -> dict[str, Any]:
    """The training loop; returns what reader.json records about the run."""
    data = SynthFields(
        args.data_dir,
        "train",
        args.seed,
        STREAM_TRAIN,
        poor_capture_share=args.poor_capture,
        digit_stroke_share=args.digit_strokes,
        digit_warp_share=args.digit_warp,
        barred_seven_share=args.barred_sevens,
        thin_one_share=args.thin_ones,
        decimal_comma_share=args.decimal_commas,
        faint_number_share=args.faint_numbers,
        repeats=args.field_views,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    progress, rng_state = Progress(total=args.steps or 10**9), None
    average = WeightAverage(model, args.ema) if args.ema > 0 else None
    if args.resume:
        progress, rng_state = resume(args, model, opt, average)
    fields_per_batch = args.batch // args.field_views
    batches = loader(data, progress.step * fields_per_batch, args.batch, args.workers)
    if rng_state is not None:  # after the loader, whose start draws from torch's generator
        torch.set_rng_state(rng_state)
    done = fit(args, model, opt, average, batches, progress, time.monotonic())
    if average is not None:  # the checkpoint keeps the last weights beside the average
        model.load_state_dict(average.state)
    return {
        "seed": args.seed,
        "steps": done.step,
        "batch": args.batch,
        "fields_seen": done.step * fields_per_batch,
        "field_views": args.field_views,
        "minutes": round(done.minutes, 1),
        "lr": args.lr,
        "threads": args.threads,
        "workers": args.workers,
        "precision": args.precision,
        "channels": list(args.channels),
        "hidden": args.hidden,
        "poor_capture_share": args.poor_capture,
        "digit_stroke_share": args.digit_strokes,
        "digit_warp_share": args.digit_warp,
        "barred_seven_share": args.barred_sevens,
        "thin_one_share": args.thin_ones,
        "decimal_comma_share": args.decimal_commas,
        "faint_number_share": args.faint_numbers,
        "ink_geometry": args.ink_geometry,
        "weight_average_decay": args.ema,
        "legs": list(done.legs),
        "torch": torch.__version__,
        **({"started_from": args.started_from} if args.start_from else {}),
    }


def fit(
    args: argparse.Namespace,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    average: WeightAverage | None,
    batches: Iterator[dict[str, Any]],
    progress: Progress,
    start: float,
) -> Progress:
    """Steps from ``progress.step`` to the planned total; returns where the run ends, this
    leg added to its legs."""
    timed_from = 0.0
    running = [0.0, 0.0]
    step, total = progress.step, progress.total
    measure = not args.steps and not args.resume
    while step < total:
        if step == PLAN_FROM:
            timed_from = time.monotonic()
        if step == PLAN_AT and measure:
            per_step = (time.monotonic() - timed_from) / (PLAN_AT - PLAN_FROM)
            total = int((args.minutes * 60 - (time.monotonic() - start)) / per_step) + step
            LOG.info("%.3f s/step: training for %d steps", per_step, total)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total if total < 10**9 else 10000, args.lr)
        ctc, ce = train_step(model, opt, next(batches), args.precision)
        if average is not None:
            average.update(model, step)
        running = [0.98 * running[0] + 0.02 * ctc, 0.98 * running[1] + 0.02 * ce]
        step += 1
        minutes = progress.minutes + (time.monotonic() - start) / 60
        if step % 50 == 0:
            LOG.info(
                "step %d/%d ctc %.4f status %.4f lr %.5f %.1f min",
                step,
                total,
                running[0],
                running[1],
                opt.param_groups[0]["lr"],
                minutes,
            )
        if step % 1000 == 0 or step == total:
            save_checkpoint(
                args, model, opt, average, _so_far(args, progress, step, total, minutes)
            )
    minutes = progress.minutes + (time.monotonic() - start) / 60
    return _so_far(args, progress, step, total, minutes)


def _so_far(
    args: argparse.Namespace, progress: Progress, step: int, total: int, minutes: float
) -> Progress:
    """The run at ``step``: the legs it started with plus this one, from ``progress.step``."""
    this_leg = leg(args.device, progress.step + 1, step, minutes - progress.minutes)
    return Progress(step, total, minutes, (*progress.legs, this_leg))


def save_checkpoint(
    args: argparse.Namespace,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    average: WeightAverage | None,
    progress: Progress,
) -> None:
    """Everything a run needs to go on exactly: weights, optimiser, generator, step, plan."""
    args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": torch.get_rng_state(),
        "step": progress.step,
        "total": progress.total,
        "minutes": progress.minutes,
        "legs": list(progress.legs),
        "recipe": recipe(args),
    }
    if average is not None:
        state["ema"] = average.state
    torch.save(state, args.checkpoint)


def resume(
    args: argparse.Namespace,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    average: WeightAverage | None,
) -> tuple[Progress, torch.Tensor]:
    """Load a checkpoint to go on from; the recipe must match the one it was trained with."""
    if not args.checkpoint.is_file():
        raise SystemExit(f"--resume: no checkpoint at {args.checkpoint}")
    state = torch.load(args.checkpoint, map_location=args.device)
    if "optimizer" not in state:
        raise SystemExit(f"--resume: {args.checkpoint} holds weights only; train from scratch")
    ours = recipe(args)
    # Checkpoints from before a recipe option existed were trained with it off.
    theirs = {**RECIPE_DEFAULTS_BEFORE, **state["recipe"]}
    if theirs != ours:
        raise SystemExit(
            f"--resume: {args.checkpoint} was trained with {theirs}, not {ours}"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if average is not None:
        average.state = state["ema"]
    total = args.steps or state["total"]
    LOG.info("resuming at step %d of %d from %s", state["step"], total, args.checkpoint)
    # Checkpoints written before legs were recorded say nothing of their device.
    legs = state.get("legs") or [leg("not recorded", 1, state["step"], state["minutes"])]
    return Progress(state["step"], total, state["minutes"], tuple(legs)), state["rng"].cpu()


def exported_weights(
    args: argparse.Namespace, state: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """The weights ``--export-only`` exports from checkpoint ``state``: its average with
    ``--ema``, else its last weights."""
    if args.ema <= 0:
        return state["model"]
    if "ema" not in state:
        raise SystemExit(f"--ema: {args.checkpoint} holds no weight average; pass --ema 0")
    return state["ema"]


def validation_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The val split's fields as the reader sees them: ``x`` ``(N, V, H, W)`` for V views.

    Written with MNIST digits only (symbols half procedural, as in training), like the
    benchmark: procedural digits are easier, and a threshold chosen on them would accept
    more wrong readings of real handwriting than it promises.
    """
    val = fixed_set(
        SynthFields(
            args.data_dir,
            "val",
            args.seed,
            STREAM_VAL,
            views=args.views,
            stroke_share=0.0,
            digit_stroke_share=0.0,
            poor_capture_share=args.poor_capture,
        ),
        args.val_fields,
        args.workers,
    )
    if args.views == 1:
        val["x"] = val["x"][:, :, None]
    val["x"] = val["x"][:, 0]  # (N, V, H, W)
    return val


def fit_calibration(
    per_view: list[tuple[np.ndarray, np.ndarray]], val: dict[str, Any], target_error: float
) -> dict[str, Any]:
    """Temperatures (first view) and the review threshold (all views) from val logits.

    ``per_view``: for each view, ``(N, T, C)`` CTC and ``(N, 4)`` status logits.  Returns
    reader.json's ``calibration`` (less what describes the run) and ``validation`` figures.
    """
    ctc, status = per_view[0]
    expected = truth(val)
    raw_acc = field_accuracy(ctc, status, expected)
    t_ctc, t_status = calibrate(ctc, status, val)
    all_ctc = np.stack([pv[0] for pv in per_view], axis=1)  # (N, V, T, C)
    all_status = np.stack([pv[1] for pv in per_view], axis=1)
    readings = [
        rd.decide(all_ctc[i], all_status[i], hw.ALPHABET, t_ctc, t_status) for i in range(len(ctc))
    ]
    confidence = np.array([r.confidence for r in readings])
    correct = np.array([r.text == e for r, e in zip(readings, expected, strict=True)])
    curve = review_curve(confidence, correct)
    threshold = choose_threshold(curve, target_error)
    at = next(r for r in curve if r["threshold"] >= threshold)
    LOG.info(
        "val field accuracy %.4f (one view), %.4f (%d views); T_ctc %.2f T_status %.2f; "
        "threshold %.4f: review %.4f, accepted error %.5f",
        raw_acc, float(correct.mean()), len(per_view), t_ctc, t_status, threshold,
        at["review_share"], at["accepted_error"],
    )
    return {
        "calibration": {
            "ctc_temperature": round(t_ctc, 4),
            "status_temperature": round(t_status, 4),
            "threshold": threshold,
            "target_accepted_error": target_error,
            "views": len(per_view),
            "split": "val",
            "fields": len(expected),
            "digits": "mnist",
        },
        "validation": {
            "field_accuracy_one_view": raw_acc,
            "field_accuracy": float(correct.mean()),
            "review_share": at["review_share"],
            "accepted_error": at["accepted_error"],
        },
    }


def finish(args: argparse.Namespace, model: nn.Module, run: dict[str, Any]) -> None:
    """Calibrate on val, choose the threshold, export ONNX and write reader.json."""
    val = validation_fields(args)
    per_view = [predict(model, val["x"][:, None, v], val["geometry"]) for v in range(args.views)]
    fitted = fit_calibration(per_view, val, args.target_error)
    args.out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, args.out / "reader.onnx")
    config = {
        "name": "papergrade-reader",
        "version": rd.CONFIG_VERSION,
        "model_version": f"{MODEL_SERIES}.{dt.date.today():%Y%m%d}",
        "input": {
            "shape": [1, rd.INPUT_HEIGHT, rd.INPUT_WIDTH],
            "batch_size": 64,
            "preprocess": "grader.read.preprocess",
            **({"geometry": "grader.read.ink_geometry"} if args.ink_geometry else {}),
        },
        "normalisation": {"mean": MEAN, "std": STD, "input": "ink 0..1 after preprocess"},
        "alphabet": hw.ALPHABET,
        "ctc_blank": 0,
        "statuses": list(rd.STATUSES),
        **fitted,
        "training": run,
    }
    (args.out / "reader.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    LOG.info("wrote %s and reader.json", args.out / "reader.onnx")


def recalibrate(args: argparse.Namespace) -> None:
    """Fit the calibration of the exported model in ``args.out`` again; weights unchanged."""
    path = args.out / "reader.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    reader = rd.Reader(args.out, threads=args.threads)
    val = validation_fields(args)
    geometry = val["geometry"].numpy()
    per_view = [reader.network(np.ascontiguousarray(val["x"][:, None, v].numpy()), geometry)
                for v in range(args.views)]
    config.update(fit_calibration(per_view, val, args.target_error))
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    LOG.info("rewrote the calibration in %s", path)


def start_from_exported(model: ReaderNet, folder: Path) -> dict[str, Any]:
    """Load the reader exported in ``folder`` into ``model``; returns what reader.json will
    record of it: its version and how it was trained."""
    onnx_path, config_path = folder / "reader.onnx", folder / "reader.json"
    for path in (onnx_path, config_path):
        if not path.is_file():
            raise SystemExit(f"--start-from: no {path.name} in {folder}")
    try:
        load_exported(model, onnx_path)
    except ExportedWeightsError as err:
        raise SystemExit(
            f"--start-from: {err}; pass the --channels, --hidden and --ink-geometry it was "
            "trained with (its reader.json's training record)"
        ) from err
    config = json.loads(config_path.read_text(encoding="utf-8"))
    LOG.info("training further from %s (%s)", onnx_path, config.get("model_version"))
    return {"model_version": config.get("model_version"), "training": config.get("training")}


def seeds_trained(training: dict[str, Any] | None) -> set[int]:
    """The seeds of a model's training record and of the runs it was trained further from."""
    seeds: set[int] = set()
    while training:
        if "seed" in training:
            seeds.add(int(training["seed"]))
        training = (training.get("started_from") or {}).get("training")
    return seeds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.recalibrate:
        recalibrate(args)
        return 0
    if args.lr is None:
        args.lr = FURTHER_LR if args.start_from else FRESH_LR
    if args.precision is None:
        args.precision = "bf16" if args.device == "cuda" or bf16_supported() else "fp32"
    elif not args.export_only:
        warning = emulated_precision_warning(args.precision, args.device, bf16_supported())
        if warning:
            LOG.warning(warning)
    torch.set_num_threads(args.threads)
    # Denormal floats (tiny gradients late in an LSTM's backward pass) are very slow on CPUs.
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    model = ReaderNet(
        n_classes=1 + len(hw.ALPHABET),
        n_status=len(rd.STATUSES),
        widths=args.channels,
        hidden=args.hidden,
        n_geometry=rd.GEOMETRY_SIZE if args.ink_geometry else 0,
    )
    if args.start_from:
        args.started_from = start_from_exported(model, args.start_from)
        if not args.resume and args.seed in seeds_trained(args.started_from["training"]):
            LOG.warning("seed %d already trained that model: it would see the same fields "
                        "again; pass another --seed", args.seed)
    # Channels-last convolutions run about 1.4x faster on CPUs (oneDNN's native layout).
    model = in_memory_format(model, torch.channels_last)
    if args.export_only:
        state = torch.load(args.checkpoint, map_location="cpu")
        model.load_state_dict(exported_weights(args, state))
        run = (
            json.loads((args.out / "reader.json").read_text())["training"]
            if (args.out / "reader.json").is_file()
            else {"steps": state["step"], "seed": args.seed, "legs": state.get("legs", []),
                  "weight_average_decay": args.ema}
        )
    else:
        LOG.info("training on %s (seed %d, %s, %s)", args.data_dir, args.seed, args.device,
                 args.precision)
        run = train(args, model.to(args.device))
    # Calibration and export run on the CPU, as the reader will.
    finish(args, model.cpu(), run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
