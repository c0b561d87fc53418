"""The reader's network: a small CRNN with a CTC head for the text and a field-status head.

Input ``(N, 1, 32, 128)`` normalised ink and, for a network built with ``n_geometry`` 4,
``(N, 4)`` figures of where that ink lay in the crop (see :func:`grader.read.ink_geometry`).
Outputs ``ctc_logits`` ``(N, 32, 13)`` (class 0 is the CTC blank, then ``0-9 - .``) and
``status_logits`` ``(N, 4)`` (number, blank, smudge, crossed_out).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


class ReaderNet(nn.Module):
    """Convolutions down to one feature column per 4 input pixels, a BiLSTM, two heads.

    The status head sees the whole field (mean and max over the sequence): whether a number
    is crossed out or just an erased smudge is a property of the field, not of one column.

    With ``n_geometry`` above 0, figures of where the ink lay in the crop before it was framed
    join every column's features before the LSTM and the pooled features before the status
    head: framing cuts a field to its ink, so a lone "1" in the middle of a box and a piece of
    the box's side left in a blank one reach the convolutions as the same upright bar.
    """

    def __init__(
        self,
        n_classes: int = 13,
        n_status: int = 4,
        widths: tuple[int, int, int, int, int] = (24, 48, 96, 96, 128),
        hidden: int = 96,
        n_geometry: int = 0,
    ) -> None:
        super().__init__()
        self.n_geometry = n_geometry
        # Set for a network loaded from an exported one (training.onnx_weights), whose batch
        # norms hold the folded shifts, not statistics to normalise by.
        self.frozen_norms = False
        a, b, c, d, e = widths
        self.features = nn.Sequential(
            *_conv(1, a),
            nn.MaxPool2d(2),  # 16 x 64
            *_conv(a, b),
            nn.MaxPool2d(2),  # 8 x 32
            *_conv(b, c),
            *_conv(c, d),
            nn.MaxPool2d((2, 1)),  # 4 x 32
            *_conv(d, e),
            nn.Conv2d(e, e, (4, 1)),  # height 4 -> 1
            nn.BatchNorm2d(e),
            nn.ReLU(True),
        )
        self.rnn = nn.LSTM(e + n_geometry, hidden, bidirectional=True, batch_first=True)
        self.dropout = nn.Dropout(0.15)
        self.ctc = nn.Linear(2 * hidden, n_classes)
        self.status = nn.Sequential(
            nn.Linear(4 * hidden + n_geometry, 64), nn.ReLU(True), nn.Linear(64, n_status)
        )

    def train(self, mode: bool = True) -> ReaderNet:
        """Training mode, with the batch norms kept in evaluation mode when frozen."""
        super().train(mode)
        if self.frozen_norms:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(
        self, x: torch.Tensor, geometry: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x).squeeze(2).transpose(1, 2)  # (N, T, e)
        if self.n_geometry and geometry is None:
            raise ValueError("this network also reads the ink's place in the crop")
        place = geometry.to(f.dtype) if self.n_geometry and geometry is not None else None
        if place is not None:
            f = torch.cat([f, place[:, None, :].expand(-1, f.shape[1], -1)], dim=2)
        seq, _ = self.rnn(f)
        seq = self.dropout(seq)
        pooled = [seq.mean(dim=1), seq.amax(dim=1)] + ([place] if place is not None else [])
        return self.ctc(seq), self.status(torch.cat(pooled, dim=1))
