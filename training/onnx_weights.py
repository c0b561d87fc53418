"""Load an exported reader (``reader.onnx``) back into a :class:`ReaderNet` to train it further.

Export folds every batch norm into the convolution before it, so the network that comes
back computes the same function with each batch norm reduced to a per-channel shift: its
statistics are set to mean 0 and variance ``1 - eps`` and the folded bias becomes its shift.
Such a network must be trained with its batch norms frozen (``ReaderNet.frozen_norms``):
normalising by batch statistics would undo the folded scales.

ONNX keeps an LSTM's gates in the order input, output, forget, cell; PyTorch keeps input,
forget, cell, output. Both split the bias into an input part and a recurrent part.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from training.model import ReaderNet

ONNX_TO_TORCH_GATES = (0, 2, 3, 1)  # torch gate k is ONNX gate ONNX_TO_TORCH_GATES[k]


class ExportedWeightsError(ValueError):
    """The ONNX file does not hold a reader of the shape asked for."""


def _torch_gate_order(weights: np.ndarray) -> np.ndarray:
    """Rows of an LSTM weight or bias (4 gates stacked on axis 0) in PyTorch's gate order."""
    gates = np.split(weights, 4, axis=0)
    return np.concatenate([gates[k] for k in ONNX_TO_TORCH_GATES], axis=0)


def _weights_by_node(path: Path) -> dict[str, list[list[np.ndarray]]]:
    """For each layer type the network uses, the constant inputs of its nodes in graph order."""
    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # protobuf's decode errors share no base class with ours
        raise ExportedWeightsError(f"{path} is not an ONNX file: {err}") from err
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    by_type: dict[str, list[list[np.ndarray]]] = {}
    for node in graph.node:
        if node.op_type in ("Conv", "LSTM", "MatMul", "Add", "Gemm"):
            held = [constants[name] for name in node.input if name in constants]
            by_type.setdefault(node.op_type, []).append(held)
    return by_type


def _set(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    if tuple(param.shape) != value.shape:
        raise ExportedWeightsError(
            f"{what}: the file holds shape {value.shape}, this network {tuple(param.shape)}"
        )
    param.copy_(torch.tensor(value, dtype=param.dtype))


def _load_features(model: ReaderNet, convs: list[list[np.ndarray]]) -> None:
    """Each convolution with its batch norm folded in: the weight as exported, the batch norm
    a shift by the exported bias."""
    layers = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != len(layers):
        raise ExportedWeightsError(f"{len(convs)} convolutions in the file, {len(layers)} here")
    for i, (conv, norm, (weight, bias)) in enumerate(zip(layers, norms, convs, strict=True)):
        _set(conv.weight, weight, f"convolution {i + 1}")
        if conv.bias is not None:
            conv.bias.zero_()
        norm.weight.fill_(1.0)
        _set(norm.bias, bias, f"convolution {i + 1}'s bias")
        cast(torch.Tensor, norm.running_mean).zero_()
        cast(torch.Tensor, norm.running_var).fill_(1.0 - norm.eps)


def _load_lstm(lstm: nn.LSTM, weights: list[np.ndarray]) -> None:
    w, r, b = weights  # (2, 4H, in), (2, 4H, H), (2, 8H)
    for direction, suffix in enumerate(("", "_reverse")):
        in_bias, rec_bias = np.split(b[direction], 2)
        _set(getattr(lstm, f"weight_ih_l0{suffix}"), _torch_gate_order(w[direction]), "LSTM")
        _set(getattr(lstm, f"weight_hh_l0{suffix}"), _torch_gate_order(r[direction]), "LSTM")
        _set(getattr(lstm, f"bias_ih_l0{suffix}"), _torch_gate_order(in_bias), "LSTM")
        _set(getattr(lstm, f"bias_hh_l0{suffix}"), _torch_gate_order(rec_bias), "LSTM")


@torch.no_grad()
def load_exported(model: ReaderNet, path: Path) -> None:
    """Set ``model``'s weights from the reader exported at ``path`` and freeze its batch norms.

    Raises :class:`ExportedWeightsError` when the file's layers do not fit the network (other
    channel counts, LSTM size or ink-geometry input).
    """
    by_type = _weights_by_node(path)
    try:
        _load_features(model, by_type["Conv"])
        _load_lstm(model.rnn, by_type["LSTM"][0])
        (ctc_weight,), (ctc_bias,) = by_type["MatMul"][0], by_type["Add"][0]
        _set(model.ctc.weight, ctc_weight.T, "text head")
        _set(model.ctc.bias, ctc_bias, "text head's bias")
        status_layers = [m for m in model.status if isinstance(m, nn.Linear)]
        for (weight, bias), layer in zip(by_type["Gemm"], status_layers, strict=True):
            _set(layer.weight, weight, "status head")
            _set(layer.bias, bias, "status head's bias")
    except ExportedWeightsError:
        raise
    except (KeyError, IndexError, ValueError) as err:
        raise ExportedWeightsError(f"{path} does not hold a reader network: {err}") from err
    model.frozen_norms = True
    model.train(model.training)
