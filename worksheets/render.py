"""Draw laid-out pages into a PDF with reportlab (the only module that imports reportlab).

Converts the layout's millimetres-from-top-left into reportlab's points-from-bottom-left here,
and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import reportlab
from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from worksheets.layout import BoxOp, DrawOp, LineOp, MarkerOp, PageLayout, QrOp, TextOp
from worksheets.marks import MARKER_CELLS, marker_bits

# Vera ships with reportlab, so printing needs no system fonts; it covers the maths signs the
# exercises print (· × − ∂ ² ≥).  Anything it lacks is spelled out instead of printing a box.
FONT_FILES = {"Vera": "Vera.ttf", "Vera-Bold": "VeraBd.ttf", "Vera-Italic": "VeraIt.ttf"}
SPELLED_OUT = {"η": "lr", "ŷ": "y\u0302", "Σ": "sum", "α": "a", "→": "->", "≤": "<="}


@cache
def register_fonts() -> frozenset[int]:
    """Register the fonts once per process; returns the code points the regular face covers."""
    folder = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
    covered: frozenset[int] = frozenset()
    for name, filename in FONT_FILES.items():
        font = TTFont(name, os.path.join(folder, filename))
        pdfmetrics.registerFont(font)
        if name == "Vera":
            covered = frozenset(font.face.charToGlyph)
    return covered


def printable(text: str) -> str:
    covered = register_fonts()
    out = []
    for char in text:
        if ord(char) in covered or char.isspace():
            out.append(char)
        else:
            replacement = SPELLED_OUT.get(char, "?")
            out.append(replacement if all(ord(c) in covered for c in replacement) else "?")
    return "".join(out)


class PageDrawer:
    """Draws one page's operations on a reportlab canvas."""

    def __init__(self, canvas: Canvas, height_mm: float) -> None:
        self.canvas = canvas
        self.height_mm = height_mm

    def point(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        return x_mm * mm, (self.height_mm - y_mm) * mm

    def draw(self, op: DrawOp) -> None:
        if isinstance(op, TextOp):
            self.text(op)
        elif isinstance(op, BoxOp):
            self.box(op)
        elif isinstance(op, LineOp):
            self.line(op)
        elif isinstance(op, MarkerOp):
            self.marker(op)
        else:
            self.qr(op)

    def text(self, op: TextOp) -> None:
        font = "Vera-Bold" if op.bold else "Vera-Italic" if op.italic else "Vera"
        self.canvas.setFont(font, op.size_pt)
        self.canvas.setFillGray(0.0)
        x, y = self.point(op.x, op.y)
        text = printable(op.text)
        if op.align == "center":
            self.canvas.drawCentredString(x, y, text)
        elif op.align == "right":
            self.canvas.drawRightString(x, y, text)
        else:
            self.canvas.drawString(x, y, text)

    def box(self, op: BoxOp) -> None:
        self.canvas.setLineWidth(op.line_mm * mm)
        self.canvas.setStrokeGray(0.0)
        x, y = self.point(op.rect.x, op.rect.y + op.rect.h)
        self.canvas.rect(x, y, op.rect.w * mm, op.rect.h * mm, stroke=1, fill=0)

    def line(self, op: LineOp) -> None:
        self.canvas.setLineWidth(op.line_mm * mm)
        self.canvas.setStrokeGray(0.0)
        self.canvas.line(*self.point(op.x1, op.y1), *self.point(op.x2, op.y2))

    def marker(self, op: MarkerOp) -> None:
        bits = marker_bits(op.marker_id)
        cell = op.rect.w / MARKER_CELLS
        self.canvas.setFillGray(0.0)
        for row in range(MARKER_CELLS):
            for col in range(MARKER_CELLS):
                if bits[row, col]:
                    x, y = self.point(op.rect.x + col * cell, op.rect.y + (row + 1) * cell)
                    # A hair of overlap stops rasterisers leaving white seams between cells.
                    self.canvas.rect(x, y, cell * mm + 0.05, cell * mm + 0.05, stroke=0, fill=1)

    def qr(self, op: QrOp) -> None:
        # A 2-module quiet zone inside the rect, with the layout keeping blank paper around it,
        # gives bigger modules than the standard 4 and still decodes reliably.
        widget = QrCodeWidget(op.payload, barLevel="M", barBorder=2)
        left, bottom, right, top = widget.getBounds()
        size = op.rect.w * mm
        drawing = Drawing(size, size, transform=[size / (right - left), 0, 0,
                                                 size / (top - bottom), 0, 0])
        drawing.add(widget)
        x, y = self.point(op.rect.x, op.rect.y + op.rect.h)
        renderPDF.draw(drawing, self.canvas, x, y)


def render_pdf(pages: Iterable[PageLayout], path: Path, title: str) -> int:
    """Write every page to one PDF; returns the number of pages written."""
    register_fonts()
    canvas = Canvas(str(path), invariant=True)
    canvas.setTitle(title)
    canvas.setCreator("Papergrade")
    count = 0
    for page in pages:
        canvas.setPageSize((page.width_mm * mm, page.height_mm * mm))
        drawer = PageDrawer(canvas, page.height_mm)
        for op in page.ops:
            drawer.draw(op)
        canvas.showPage()
        count += 1
    canvas.save()
    return count
