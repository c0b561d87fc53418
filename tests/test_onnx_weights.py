"""Training further from an exported reader: ONNX weights back into the network, frozen norms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="trainer tests need the [train] extra (torch)")
pytest.importorskip("onnx", reason="trainer tests need the [train] extra (onnx)")

from torch import Tensor  # noqa: E402

from grader import read as rd  # noqa: E402
from training import train_reader  # noqa: E402
from training.model import ReaderNet  # noqa: E402
from training.onnx_weights import ExportedWeightsError, load_exported  # noqa: E402

SHIPPED = Path(rd.__file__).parent / "models"


def trained_looking(n_geometry: int = 0, seed: int = 0) -> ReaderNet:
    """A network whose batch norms hold statistics and scales far from their initial ones,
    so that folding them into the convolutions changes every exported weight."""
    torch.manual_seed(seed)
    model = ReaderNet(n_geometry=n_geometry)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                channels = module.num_features
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                assert module.weight.shape == (channels,)
    return model.eval()


def inputs(n_geometry: int = 0) -> tuple[Tensor, Tensor | None]:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, rd.INPUT_HEIGHT, rd.INPUT_WIDTH, generator=generator)
    geometry = torch.rand(4, n_geometry, generator=generator) if n_geometry else None
    return x, geometry


@pytest.mark.parametrize("n_geometry", [0, rd.GEOMETRY_SIZE])
def test_an_exported_network_loads_back_to_the_same_outputs(
    tmp_path: Path, n_geometry: int
) -> None:
    original = trained_looking(n_geometry)
    x, geometry = inputs(n_geometry)
    with torch.no_grad():
        expected = original(x, geometry)
    train_reader.export_onnx(original, tmp_path / "reader.onnx")
    loaded = ReaderNet(n_geometry=n_geometry)
    load_exported(loaded, tmp_path / "reader.onnx")
    with torch.no_grad():
        got = loaded.eval()(x, geometry)
    for want, have in zip(expected, got, strict=True):
        assert torch.allclose(want, have, atol=1e-4), (want - have).abs().max()


def test_the_shipped_reader_loads_back_to_what_onnxruntime_computes() -> None:
    ort = pytest.importorskip("onnxruntime")
    config = json.loads((SHIPPED / "reader.json").read_text())
    training = config["training"]
    loaded = ReaderNet(widths=tuple(training["channels"]), hidden=training["hidden"])
    load_exported(loaded, SHIPPED / "reader.onnx")
    x, _ = inputs()
    session = ort.InferenceSession(str(SHIPPED / "reader.onnx"))
    ctc, status = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        ctc_torch, status_torch = loaded.eval()(x)
    assert np.allclose(ctc, ctc_torch.numpy(), atol=1e-4)
    assert np.allclose(status, status_torch.numpy(), atol=1e-4)


def test_a_loaded_network_trains_with_its_batch_norms_frozen(tmp_path: Path) -> None:
    """Batch statistics would undo the folded scales: the norms keep evaluating in training,
    their statistics untouched by a step, while the rest of the network learns."""
    train_reader.export_onnx(trained_looking(), tmp_path / "reader.onnx")
    model = ReaderNet()
    load_exported(model, tmp_path / "reader.onnx")
    model.train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert model.training and model.rnn.training and not any(m.training for m in norms)
    before = [m.running_var.clone() for m in norms]
    first = model.features[0]
    assert isinstance(first, torch.nn.Conv2d)
    first_weights = first.weight.clone()
    data = train_reader.SynthFields(None, "train", 0, train_reader.STREAM_TRAIN)
    batch = train_reader.collate([data[i] for i in range(8)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train_reader.train_step(model, opt, batch, "fp32")
    assert all(torch.equal(m.running_var, b) for m, b in zip(norms, before, strict=True))
    assert not torch.equal(first.weight, first_weights)
    assert all(m.training for m in ReaderNet().train().modules())  # fresh ones are not frozen


def test_a_network_of_another_shape_is_refused(tmp_path: Path) -> None:
    train_reader.export_onnx(trained_looking(), tmp_path / "reader.onnx")
    with pytest.raises(ExportedWeightsError, match="convolution 1"):
        load_exported(ReaderNet(widths=(16, 48, 96, 96, 128)), tmp_path / "reader.onnx")
    with pytest.raises(ExportedWeightsError, match="LSTM"):
        load_exported(ReaderNet(n_geometry=rd.GEOMETRY_SIZE), tmp_path / "reader.onnx")
    (tmp_path / "other.onnx").write_bytes(b"")
    with pytest.raises(ExportedWeightsError, match="does not hold a reader"):
        load_exported(ReaderNet(), tmp_path / "other.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"\x0a\xff\xff not protobuf")
    with pytest.raises(ExportedWeightsError, match="not an ONNX file"):
        load_exported(ReaderNet(), tmp_path / "broken.onnx")


def further_run(tmp_path: Path, start: Path, *extra: str) -> dict:
    train_reader.main(
        [
            "--data-dir", str(tmp_path / "no-data"),
            "--out", str(tmp_path / "further"),
            "--start-from", str(start),
            "--steps", "2", "--batch", "8", "--workers", "0",
            "--val-fields", "20", "--views", "1",
            "--checkpoint", str(tmp_path / "further.pt"),
            *extra,
        ]
    )
    return json.loads((tmp_path / "further" / "reader.json").read_text())


@pytest.mark.slow
def test_a_run_from_an_exported_reader_records_where_it_started(tmp_path: Path) -> None:
    config = further_run(tmp_path, SHIPPED)
    shipped = json.loads((SHIPPED / "reader.json").read_text())
    training = config["training"]
    assert training["started_from"]["model_version"] == shipped["model_version"]
    assert training["started_from"]["training"] == shipped["training"]
    assert training["lr"] == train_reader.FURTHER_LR and training["steps"] == 2
    reader = rd.Reader(tmp_path / "further", threads=1)
    assert reader.read_batch([np.full((160, 360), 235, np.uint8)])[0].confidence >= 0.0
    # The checkpoint goes on like any other, and only with the same starting point.
    resumed = further_run(tmp_path, SHIPPED, "--resume", "--steps", "3")
    assert resumed["training"]["steps"] == 3
    with pytest.raises(SystemExit, match="was trained with"):
        further_run(tmp_path, tmp_path / "further", "--resume", "--steps", "4")


def test_starting_from_a_folder_without_a_reader_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no reader\.onnx in"):
        further_run(tmp_path, tmp_path / "empty")


def test_the_seeds_a_model_was_trained_with_include_the_runs_it_continues() -> None:
    """A further run with one of them would be shown the same fields again."""
    record = {"seed": 1, "started_from": {"model_version": "1.6", "training": {"seed": 0}}}
    assert train_reader.seeds_trained(record) == {0, 1}
    assert train_reader.seeds_trained({"steps": 10}) == set()
    assert train_reader.seeds_trained(None) == set()
