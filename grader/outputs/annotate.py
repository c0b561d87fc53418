"""Annotated pages: one PDF per student with every answer box marked, for handing back.

Each graded page is drawn from its aligned image (page coordinates, any px/mm) resampled to
``DPI``, with a header strip above it.  Boxes are outlined in the verdict's colour, get a tick
or a cross, the points, and a note: the expected answer for wrong or blank boxes, what is
still to be checked for boxes in review, and how follow-through credit was computed.

Drawing uses Pillow only (reportlab stays inside ``worksheets.render``).  A page whose image is
missing or unreadable is drawn on white, so one lost file never costs a student their PDF.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from grader.outputs.common import A4_MM, atomic_write_bytes, fmt_percent, fmt_points, safe_filename
from grader.outputs.sheets import StudentSheet, build_sheets, max_points, percent
from grader.results import ClassResults, FieldResult, PageResult

# 120 dpi keeps handwriting legible and a two-page PDF well under a megabyte.
DPI = 120.0
MM_PER_INCH = 25.4
HEADER_MM = 16.0
JPEG_QUALITY = 80

RGB = tuple[int, int, int]
COLOURS: dict[str, RGB] = {
    "correct": (20, 140, 60),
    "incorrect": (215, 25, 30),
    "review": (240, 140, 0),
    "blank": (140, 140, 140),
}
NOTE_COLOUR: RGB = (25, 60, 160)
TEXT_COLOUR: RGB = (20, 20, 20)
WHITE: RGB = (255, 255, 255)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=1)
def _vera_dir() -> Path | None:
    """reportlab's bundled Bitstream Vera fonts, found without importing reportlab."""
    spec = importlib.util.find_spec("reportlab")
    if spec is None or spec.origin is None:
        return None
    fonts = Path(spec.origin).parent / "fonts"
    return fonts if (fonts / "Vera.ttf").is_file() else None


@lru_cache(maxsize=16)
def load_font(size_px: int, bold: bool = False) -> Font:
    folder = _vera_dir()
    if folder is not None:
        try:
            return ImageFont.truetype(str(folder / ("VeraBd.ttf" if bold else "Vera.ttf")), size_px)
        except OSError:
            pass
    return ImageFont.load_default(size=size_px)


@dataclass(frozen=True)
class Geometry:
    """Pixel geometry of one annotated page: ``scale`` px per mm, header strip on top."""

    width: int
    height: int
    scale: float
    header: int

    @classmethod
    def for_page(cls, page_size_mm: tuple[float, float]) -> Geometry:
        scale = DPI / MM_PER_INCH
        return cls(
            width=round(page_size_mm[0] * scale),
            height=round(page_size_mm[1] * scale),
            scale=scale,
            header=round(HEADER_MM * scale),
        )

    def mm(self, value: float) -> int:
        return max(1, round(value * self.scale))

    def box(self, bbox_mm: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        x, y, w, h = bbox_mm
        return (
            round(x * self.scale),
            self.header + round(y * self.scale),
            round((x + w) * self.scale),
            self.header + round((y + h) * self.scale),
        )


def load_page_image(page: PageResult, geometry: Geometry) -> Image.Image | None:
    """The aligned page image resampled to the output size, or None when it cannot be read.

    The image covers the whole page in page coordinates, so its own px/mm is its width over the
    page width; resizing to the page's size at ``DPI`` puts every box where its mm say.
    """
    if not page.image_path:
        return None
    try:
        with Image.open(page.image_path) as source:
            image = source.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return image.resize((geometry.width, geometry.height), Image.Resampling.BILINEAR)


def _text_line(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font: Font,
               colour: RGB) -> int:
    """Draw text on a white plate (readable over handwriting); returns its right edge."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=WHITE)
    draw.text(xy, text, font=font, fill=colour)
    return int(right)


def _mark(draw: ImageDraw.ImageDraw, f: FieldResult, x: int, y: int, size: int) -> None:
    colour = COLOURS.get(f.verdict, COLOURS["blank"])
    width = max(2, size // 6)
    if f.verdict == "correct":
        points = [(x, y + size * 0.55), (x + size * 0.38, y + size), (x + size, y)]
        draw.line(points, fill=colour, width=width, joint="curve")
    elif f.verdict == "incorrect":
        draw.line([(x, y), (x + size, y + size)], fill=colour, width=width)
        draw.line([(x, y + size), (x + size, y)], fill=colour, width=width)
    elif f.verdict == "review":
        draw.text((x + size // 5, y - size // 10), "?", font=load_font(size, bold=True),
                  fill=colour)
    else:
        draw.line([(x, y + size // 2), (x + size, y + size // 2)], fill=colour, width=width)


def field_notes(f: FieldResult) -> list[tuple[str, RGB]]:
    """What to write beside a box, with the colour to write it in."""
    notes: list[tuple[str, RGB]] = []
    if f.verdict == "incorrect":
        notes.append((f"answer: {f.expected_used}", COLOURS["incorrect"]))
    elif f.verdict == "blank":
        notes.append((f"answer: {f.expected_used}", COLOURS["blank"]))
    elif f.verdict == "review":
        read = f.read if f.read is not None else "nothing"
        notes.append((f"to be checked (read {read})", COLOURS["review"]))
    if f.carried_forward:
        # The reason is written for the teacher (it may name the reader's confidence).
        notes.append((f"follow-through: {f.expected_used} from your earlier answers",
                      NOTE_COLOUR))
    return notes


Rect = tuple[int, int, int, int]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def outline_rect(f: FieldResult, geometry: Geometry) -> Rect:
    """The drawn outline: just outside the printed border, so it never covers the digits."""
    left, top, right, bottom = geometry.box(f.bbox_mm)
    pad = geometry.mm(0.8)
    return left - pad, top - pad, right + pad, bottom + pad


@dataclass(frozen=True)
class Label:
    """What goes beside a box: the mark and points on the first line, notes below."""

    points: str
    notes: list[tuple[str, RGB]]
    mark: int
    width: int
    height: int
    line: int


def make_label(draw: ImageDraw.ImageDraw, f: FieldResult, geometry: Geometry) -> Label:
    font = load_font(geometry.mm(3.0))
    mark, gap, line = geometry.mm(4.0), geometry.mm(1.5), geometry.mm(3.8)
    # A box in review has not earned anything yet: its points are not shown as a zero.
    earned = "?" if f.verdict == "review" else fmt_points(f.points)
    points = f"{earned}/{fmt_points(f.max_points)}"
    notes = field_notes(f)
    widths = [mark + gap + draw.textlength(points, font=font)]
    widths += [draw.textlength(text, font=font) for text, _ in notes]
    height = max(mark, line) + line * len(notes)
    return Label(points, notes, mark, round(max(widths)) + 4, height, line)


def place_label(outline: Rect, label: Label, obstacles: list[Rect], geometry: Geometry) -> Rect:
    """Right of the box if free, else below it, else above; never over another box."""
    gap = geometry.mm(1.5)
    left, top, right, bottom = outline
    candidates = [
        (right + gap, top),
        (left, bottom + gap),
        (left, top - gap - label.height),
    ]
    page = (0, geometry.header, geometry.width, geometry.header + geometry.height)
    for x, y in candidates:
        rect = (x, y, x + label.width, y + label.height)
        inside = rect[0] >= page[0] and rect[1] >= page[1] and rect[2] <= page[2] \
            and rect[3] <= page[3]
        if inside and not any(_overlaps(rect, other) for other in obstacles):
            return rect
    x, y = candidates[1]
    return x, y, x + label.width, y + label.height


def draw_label(draw: ImageDraw.ImageDraw, f: FieldResult, label: Label, rect: Rect,
               geometry: Geometry) -> None:
    x, y = rect[0], rect[1]
    _mark(draw, f, x, y, label.mark)
    font = load_font(geometry.mm(3.0))
    colour = COLOURS.get(f.verdict, COLOURS["blank"])
    _text_line(draw, (x + label.mark + geometry.mm(1.5), y), label.points, font, colour)
    y += max(label.mark, label.line)
    for text, note_colour in label.notes:
        _text_line(draw, (x, y), text, font, note_colour)
        y += label.line


def draw_fields(draw: ImageDraw.ImageDraw, fields: list[FieldResult], geometry: Geometry) -> None:
    """Outline every box first, then place each label clear of all boxes and earlier labels."""
    outlines = [outline_rect(f, geometry) for f in fields]
    width = max(3, geometry.mm(0.7))
    for f, outline in zip(fields, outlines, strict=True):
        draw.rectangle(outline, outline=COLOURS.get(f.verdict, COLOURS["blank"]), width=width)
    obstacles = list(outlines)
    for f, outline in zip(fields, outlines, strict=True):
        label = make_label(draw, f, geometry)
        rect = place_label(outline, label, obstacles, geometry)
        obstacles.append(rect)
        draw_label(draw, f, label, rect, geometry)


def header_lines(sheet: StudentSheet, results: ClassResults, page: PageResult,
                 index: int, count: int) -> tuple[str, str]:
    maximum = max_points(results)
    who = f"{sheet.name} ({sheet.student_id})" if sheet.identified else sheet.key
    first = f"{who} · {results.title} · page {page.page_number or index + 1} ({index + 1}/{count})"
    pct = fmt_percent(percent(sheet.total, maximum))
    second = f"Total {fmt_points(sheet.total)}/{fmt_points(maximum)} ({pct}%)"
    if sheet.provisional:
        second += " · PROVISIONAL: " + "; ".join(sheet.notes([]))
    return first, second


def draw_header(draw: ImageDraw.ImageDraw, lines: tuple[str, str], provisional: bool,
                geometry: Geometry) -> None:
    draw.rectangle((0, 0, geometry.width, geometry.header - 1), fill=(240, 240, 240))
    draw.line((0, geometry.header - 1, geometry.width, geometry.header - 1), fill=(120, 120, 120))
    margin = geometry.mm(5)
    draw.text((margin, geometry.mm(2.5)), lines[0], font=load_font(geometry.mm(4.2), True),
              fill=TEXT_COLOUR)
    colour = COLOURS["review"] if provisional else TEXT_COLOUR
    draw.text((margin, geometry.mm(8.8)), lines[1], font=load_font(geometry.mm(4.0)),
              fill=colour)


def annotate_page(sheet: StudentSheet, results: ClassResults, page: PageResult, index: int,
                  page_size_mm: tuple[float, float] = A4_MM) -> Image.Image:
    """One page of a student's PDF: header strip, the page image (or white), the marks."""
    geometry = Geometry.for_page(page_size_mm)
    canvas = Image.new("RGB", (geometry.width, geometry.height + geometry.header), WHITE)
    image = load_page_image(page, geometry)
    draw = ImageDraw.Draw(canvas)
    if image is not None:
        canvas.paste(image, (0, geometry.header))
    else:
        note = "page image not available: boxes only"
        draw.text((geometry.mm(5), geometry.header + geometry.mm(3)), note,
                  font=load_font(geometry.mm(3.0)), fill=COLOURS["blank"])
    draw_header(draw, header_lines(sheet, results, page, index, len(sheet.pages)),
                sheet.provisional, geometry)
    draw_fields(draw, page.fields, geometry)
    return canvas


def student_pdf_bytes(sheet: StudentSheet, results: ClassResults, generated: datetime,
                      page_size_mm: tuple[float, float] = A4_MM) -> bytes:
    images = [annotate_page(sheet, results, page, i, page_size_mm)
              for i, page in enumerate(sheet.pages)]
    buffer = io.BytesIO()
    stamp = generated.utctimetuple()
    images[0].save(
        buffer, "PDF", save_all=True, append_images=images[1:], resolution=DPI,
        quality=JPEG_QUALITY, subsampling=0,  # 4:4:4 keeps thin coloured outlines crisp
        title=f"{results.title}: {sheet.name}", creationDate=stamp, modDate=stamp,
    )
    return buffer.getvalue()


def student_pdf_name(sheet: StudentSheet, taken: set[str]) -> str:
    stem = safe_filename(sheet.student_id) if sheet.identified else sheet.key
    name, n = f"{stem}.pdf", 2
    while name in taken:  # two ids that clean up to the same name must not overwrite
        name, n = f"{stem}-{n}.pdf", n + 1
    taken.add(name)
    return name


def write_student_pdfs(results: ClassResults, folder: Path, generated: datetime,
                       page_size_mm: tuple[float, float] = A4_MM) -> dict[str, Path]:
    """``students/<id>.pdf`` for every sheet with graded pages; keys are 'students/<name>'."""
    written: dict[str, Path] = {}
    taken: set[str] = set()
    for sheet in build_sheets(results):
        if not sheet.pages:
            continue
        name = student_pdf_name(sheet, taken)
        data = student_pdf_bytes(sheet, results, generated, page_size_mm)
        written[f"{folder.name}/{name}"] = atomic_write_bytes(folder / name, data)
    _remove_stale(folder, taken)
    return written


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Drop PDFs of an earlier run into this folder (a page since identified, say)."""
    if not folder.is_dir():
        return
    for path in folder.glob("*.pdf"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
