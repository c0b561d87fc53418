"""Page geometry: where every mark, text, grid and answer box goes, in millimetres.

One coordinate system: millimetres from the page's top-left corner, x to the right, y down.
The layout produces plain drawing operations; the renderer turns them into PDF and the key
exporter reads the same objects, so the printed boxes and the key cannot disagree.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

from worksheets.errors import SpecError
from worksheets.exercises.base import AnswerGrid, GivenGrid, PresentationItem, Symbol
from worksheets.marks import PageIdentity

PT_MM = 25.4 / 72.0  # one typographic point in millimetres

MARKER_SIZE_MM = 10.0
MARKER_INSET_MM = 8.0
QR_SIZE_MM = 28.0
CONTENT_LEFT_MM = 24.0  # clears the side markers (8..18 mm) with a quiet zone
CONTENT_TOP_MM = 66.0
CONTENT_BOTTOM_GAP_MM = 24.0

ANSWER_BOX_W_MM = 32.0
ANSWER_BOX_H_MM = 12.0
DIGIT_BOX_W_MM = 10.0
DIGIT_BOX_H_MM = 12.0
STUDENT_NUMBER_DIGITS = 6
# Student-number digit boxes stand as far apart as answer boxes: 1.5 mm apart, a blurred or
# shaken photo merged a digit's side with its neighbour's, and student-number pages were
# aligned far less often than others (development pages, hard tier: 563 of 600 against 586
# of 600 with 4 mm; docs/benchmarks.md, "Page alignment").
DIGIT_GAP_MM = 4.0
BOX_LINE_MM = 0.4

ANSWER_GAP_X_MM = 4.0
FIELD_LABEL_MM = 4.0  # room above each box for its small printed label
ANSWER_GAP_Y_MM = 2.5
GRID_LABEL_MM = 5.0
GIVEN_CELL_H_MM = 7.0
ITEM_GAP_MM = 4.0
SYMBOL_W_MM = 7.0
ROW_GAP_MM = 4.0
EXERCISE_GAP_MM = 7.0
HEADING_MM = 7.0
PROMPT_LINE_MM = 4.6
PROMPT_PT = 9.5
AVERAGE_CHAR_EM = 0.56  # Vera's mean advance width; wrapping errs on the short side


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle in mm: top-left corner (x, y), width w, height h."""

    x: float
    y: float
    w: float
    h: float

    def moved(self, dx: float, dy: float) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.w, self.h)

    def as_list(self) -> list[float]:
        return [round(self.x, 3), round(self.y, 3), round(self.w, 3), round(self.h, 3)]


@dataclass(frozen=True)
class TextOp:
    """Text whose baseline starts at (x, y) mm; ``align`` says which end x refers to."""

    x: float
    y: float
    text: str
    size_pt: float
    bold: bool = False
    italic: bool = False
    align: str = "left"


@dataclass(frozen=True)
class BoxOp:
    """A rectangle outline; its line is centred on the rect's edges."""

    rect: Rect
    line_mm: float = BOX_LINE_MM


@dataclass(frozen=True)
class LineOp:
    x1: float
    y1: float
    x2: float
    y2: float
    line_mm: float = 0.3


@dataclass(frozen=True)
class MarkerOp:
    marker_id: int
    rect: Rect


@dataclass(frozen=True)
class QrOp:
    payload: str
    rect: Rect


DrawOp = TextOp | BoxOp | LineOp | MarkerOp | QrOp


@dataclass(frozen=True)
class PlacedField:
    """An answer box on the page. ``field_id`` is worksheet-wide, e.g. ``q1.z1``."""

    field_id: str
    exercise_id: str
    name: str
    label: str
    rect: Rect


@dataclass
class PageLayout:
    """Everything on one printed page."""

    width_mm: float
    height_mm: float
    identity: PageIdentity
    ops: list[DrawOp] = field(default_factory=list)
    fields: list[PlacedField] = field(default_factory=list)
    student_number_boxes: list[Rect] = field(default_factory=list)
    markers: list[MarkerOp] = field(default_factory=list)
    qr: QrOp | None = None


@dataclass(frozen=True)
class ExerciseBlock:
    """What the layout needs of one exercise: heading, prompt and presentation rows."""

    exercise_id: str
    heading: str
    prompt: str
    notes: Sequence[str]
    rows: Sequence[Sequence[PresentationItem]]
    labels: dict[str, str]  # local field name -> printed label


@dataclass(frozen=True)
class PageHeader:
    title: str
    class_name: str
    instructions: str
    student_line: str | None  # "Name: ..." when printed for a roster, else None


def marker_rects(width_mm: float, height_mm: float) -> list[Rect]:
    """The eight fiducials, ids 0..7: corners and edge midpoints, clockwise from top-left.

    Their ids are unique per position, so the grader also learns the page's orientation.
    """
    s, m = MARKER_SIZE_MM, MARKER_INSET_MM
    left, right = m, width_mm - m - s
    top, bottom = m, height_mm - m - s
    mid_x, mid_y = (width_mm - s) / 2, (height_mm - s) / 2
    corners = [(left, top), (mid_x, top), (right, top), (right, mid_y),
               (right, bottom), (mid_x, bottom), (left, bottom), (left, mid_y)]
    return [Rect(x, y, s, s) for x, y in corners]


def qr_rect(width_mm: float) -> Rect:
    return Rect(width_mm - CONTENT_LEFT_MM - QR_SIZE_MM, 21.0, QR_SIZE_MM, QR_SIZE_MM)


def content_width(width_mm: float) -> float:
    return width_mm - 2 * CONTENT_LEFT_MM


def wrap(text: str, width_mm: float, size_pt: float) -> list[str]:
    chars = max(10, int(width_mm / (size_pt * PT_MM * AVERAGE_CHAR_EM)))
    return textwrap.wrap(text, chars) or [""]


# --- presentation items --------------------------------------------------------------------


def given_cell_width(grid: GivenGrid) -> float:
    longest = max((len(v) for row in grid.values for v in row), default=1)
    return max(8.0, 2.1 * longest + 3.0)


def item_size(item: PresentationItem) -> tuple[float, float]:
    """Width and height (mm) of one presentation item, label included."""
    if isinstance(item, Symbol):
        return SYMBOL_W_MM, 8.0
    if isinstance(item, GivenGrid):
        cols = len(item.values[0]) + (1 if item.row_labels else 0)
        rows = len(item.values) + (1 if item.col_labels else 0)
        return cols * given_cell_width(item) + 3.0, rows * GIVEN_CELL_H_MM + GRID_LABEL_MM
    cols = max(len(r) for r in item.cells)
    width = cols * ANSWER_BOX_W_MM + (cols - 1) * ANSWER_GAP_X_MM
    pitch = FIELD_LABEL_MM + ANSWER_BOX_H_MM + ANSWER_GAP_Y_MM
    return width, GRID_LABEL_MM + len(item.cells) * pitch - ANSWER_GAP_Y_MM


def place_symbol(item: Symbol, x: float, y: float, h: float) -> list[DrawOp]:
    return [TextOp(x + SYMBOL_W_MM / 2, y + h / 2 + 1.8, item.text, 14, align="center")]


def place_given(item: GivenGrid, x: float, y: float) -> list[DrawOp]:
    ops: list[DrawOp] = [TextOp(x, y + 3.5, item.label, 9, italic=True)]
    cell_w = given_cell_width(item)
    top = y + GRID_LABEL_MM
    x0 = x + 1.5 + (cell_w if item.row_labels else 0.0)
    y0 = top + (GIVEN_CELL_H_MM if item.col_labels else 0.0)
    for c, text in enumerate(item.col_labels):
        ops.append(TextOp(x0 + (c + 0.5) * cell_w, top + 5.0, text, 9, bold=True, align="center"))
    for r, text in enumerate(item.row_labels):
        ops.append(TextOp(x + 1.5 + cell_w / 2, y0 + r * GIVEN_CELL_H_MM + 5.0, text, 9,
                          bold=True, align="center"))
    for r, row in enumerate(item.values):
        for c, text in enumerate(row):
            ops.append(TextOp(x0 + (c + 0.5) * cell_w, y0 + r * GIVEN_CELL_H_MM + 5.0, text, 11,
                              align="center"))
    width = len(item.values[0]) * cell_w
    height = len(item.values) * GIVEN_CELL_H_MM
    if item.row_labels or item.col_labels:
        ops.extend(table_lines(x0, y0, width, height, len(item.values), len(item.values[0])))
    else:
        ops.extend(bracket_lines(x0, y0, width, height))
    return ops


def bracket_lines(x: float, y: float, w: float, h: float) -> list[DrawOp]:
    """Square brackets around a matrix, the way textbooks print them."""
    tick = 1.5
    left, right = x - 0.5, x + w + 0.5
    return [
        LineOp(left, y, left, y + h), LineOp(left, y, left + tick, y),
        LineOp(left, y + h, left + tick, y + h),
        LineOp(right, y, right, y + h), LineOp(right, y, right - tick, y),
        LineOp(right, y + h, right - tick, y + h),
    ]


def table_lines(x: float, y: float, w: float, h: float, rows: int, cols: int) -> list[DrawOp]:
    ops: list[DrawOp] = [BoxOp(Rect(x, y, w, h), 0.25)]
    for r in range(1, rows):
        ops.append(LineOp(x, y + r * h / rows, x + w, y + r * h / rows, 0.2))
    for c in range(1, cols):
        ops.append(LineOp(x + c * w / cols, y, x + c * w / cols, y + h, 0.2))
    return ops


def place_answers(
    item: AnswerGrid, x: float, y: float, block: ExerciseBlock
) -> tuple[list[DrawOp], list[PlacedField]]:
    ops: list[DrawOp] = [TextOp(x, y + 3.5, item.label, 9, italic=True)]
    placed: list[PlacedField] = []
    pitch_y = FIELD_LABEL_MM + ANSWER_BOX_H_MM + ANSWER_GAP_Y_MM
    for r, row in enumerate(item.cells):
        for c, name in enumerate(row):
            if not name:
                continue
            box_x = x + c * (ANSWER_BOX_W_MM + ANSWER_GAP_X_MM)
            box_y = y + GRID_LABEL_MM + r * pitch_y + FIELD_LABEL_MM
            rect = Rect(box_x, box_y, ANSWER_BOX_W_MM, ANSWER_BOX_H_MM)
            label = block.labels.get(name, name)
            # Above the 2 mm margin that field crops take around the box, so a crop never
            # holds printed text.
            ops.append(TextOp(box_x + 0.5, box_y - 2.9, label, 7))
            ops.append(BoxOp(rect))
            field_id = f"{block.exercise_id}.{name}"
            placed.append(PlacedField(field_id, block.exercise_id, name, label, rect))
    return ops, placed


# --- exercises -----------------------------------------------------------------------------


def split_row(items: Sequence[PresentationItem], width: float) -> list[list[PresentationItem]]:
    """Greedily break a row that is too wide into several lines."""
    lines: list[list[PresentationItem]] = [[]]
    used = 0.0
    for item in items:
        w = item_size(item)[0]
        if lines[-1] and used + ITEM_GAP_MM + w > width:
            lines.append([])
            used = 0.0
        used += (ITEM_GAP_MM if lines[-1] else 0.0) + w
        lines[-1].append(item)
    return lines


def block_lines(block: ExerciseBlock, width: float) -> list[list[PresentationItem]]:
    return [line for row in block.rows for line in split_row(row, width)]


def block_height(block: ExerciseBlock, width: float) -> float:
    text_lines = len(wrap(block.prompt, width, PROMPT_PT)) + sum(
        len(wrap(note, width, PROMPT_PT)) for note in block.notes
    )
    rows = block_lines(block, width)
    rows_h = sum(max(item_size(i)[1] for i in line) for line in rows)
    return HEADING_MM + text_lines * PROMPT_LINE_MM + 2.0 + rows_h + ROW_GAP_MM * len(rows)


def place_block(
    block: ExerciseBlock, x: float, y: float, width: float
) -> tuple[list[DrawOp], list[PlacedField]]:
    ops: list[DrawOp] = [TextOp(x, y + 5.0, block.heading, 11.5, bold=True)]
    cursor = y + HEADING_MM
    for text in [block.prompt, *block.notes]:
        for text_line in wrap(text, width, PROMPT_PT):
            cursor += PROMPT_LINE_MM
            ops.append(TextOp(x, cursor - 1.0, text_line, PROMPT_PT))
    cursor += 2.0
    placed: list[PlacedField] = []
    for line in block_lines(block, width):
        height = max(item_size(i)[1] for i in line)
        item_x = x
        for item in line:
            w, h = item_size(item)
            top = cursor + (height - h) / 2
            if isinstance(item, Symbol):
                ops.extend(place_symbol(item, item_x, cursor, height))
            elif isinstance(item, GivenGrid):
                ops.extend(place_given(item, item_x, top))
            else:
                item_ops, item_fields = place_answers(item, item_x, top, block)
                ops.extend(item_ops)
                placed.extend(item_fields)
            item_x += w + ITEM_GAP_MM
        cursor += height + ROW_GAP_MM
    return ops, placed


# --- pages ---------------------------------------------------------------------------------


def title_size(title: str, width_mm: float) -> float:
    """The largest size up to 16 pt at which the title stays clear of the QR code."""
    room = qr_rect(width_mm).x - 4.0 - CONTENT_LEFT_MM
    fitting = room / (max(len(title), 1) * 0.62 * PT_MM)
    return max(8.0, min(16.0, fitting))


def header_ops(
    header: PageHeader, width_mm: float, page_number: int, page_count: int, first: bool
) -> tuple[list[DrawOp], list[Rect]]:
    x = CONTENT_LEFT_MM
    size = title_size(header.title, width_mm)
    ops: list[DrawOp] = [TextOp(x, 27.0, header.title, size, bold=True)]
    page_text = f"Page {page_number} of {page_count}"
    subtitle = " · ".join(p for p in (header.class_name, page_text) if p)
    ops.append(TextOp(x, 33.0, subtitle, 10))
    digit_boxes: list[Rect] = []
    if header.student_line is not None:
        ops.append(TextOp(x, 42.0, header.student_line, 11.5, bold=True))
    elif first:
        ops.append(TextOp(x, 41.0, "Name:", 10.5))
        ops.append(LineOp(x + 12.0, 41.5, x + 80.0, 41.5, 0.25))
        ops.append(TextOp(x, 51.5, "Student number:", 9.5))
        for i in range(STUDENT_NUMBER_DIGITS):
            rect = Rect(x + 30.0 + i * (DIGIT_BOX_W_MM + DIGIT_GAP_MM), 44.5, DIGIT_BOX_W_MM,
                        DIGIT_BOX_H_MM)
            digit_boxes.append(rect)
            ops.append(BoxOp(rect))
    ops.append(TextOp(x, CONTENT_TOP_MM - 4.0, header.instructions, 8.5, italic=True))
    return ops, digit_boxes


def paginate(blocks: Sequence[ExerciseBlock], width_mm: float, height_mm: float) -> list[list[int]]:
    """Indices of the blocks on each page; an exercise never splits across pages."""
    usable = height_mm - CONTENT_BOTTOM_GAP_MM - CONTENT_TOP_MM
    width = content_width(width_mm)
    pages: list[list[int]] = [[]]
    used = 0.0
    for index, block in enumerate(blocks):
        needed = block_height(block, width)
        if needed > usable:
            raise SpecError(
                f"exercise {block.exercise_id} ({block.heading}) is too tall for one page; "
                "choose smaller matrices or fewer items"
            )
        if pages[-1] and used + needed > usable:
            pages.append([])
            used = 0.0
        pages[-1].append(index)
        used += needed + EXERCISE_GAP_MM
    return pages


def layout_variant(
    blocks: Sequence[ExerciseBlock],
    header: PageHeader,
    paper_mm: tuple[float, float],
    worksheet_id: str,
    variant: int,
) -> list[PageLayout]:
    """All pages of one variant (one student or one numbered copy)."""
    width_mm, height_mm = paper_mm
    page_blocks = paginate(blocks, width_mm, height_mm)
    pages: list[PageLayout] = []
    for number, indices in enumerate(page_blocks, start=1):
        identity = PageIdentity(worksheet_id, variant, number)
        page = PageLayout(width_mm, height_mm, identity)
        add_marks(page)
        ops, digits = header_ops(header, width_mm, number, len(page_blocks), number == 1)
        page.ops.extend(ops)
        page.student_number_boxes = digits
        y = CONTENT_TOP_MM
        for index in indices:
            block_ops, placed = place_block(blocks[index], CONTENT_LEFT_MM, y,
                                            content_width(width_mm))
            page.ops.extend(block_ops)
            page.fields.extend(placed)
            y += block_height(blocks[index], content_width(width_mm)) + EXERCISE_GAP_MM
        footer = f"Papergrade · {worksheet_id} · copy {variant + 1} · page {number}"
        page.ops.append(TextOp(width_mm / 2, height_mm - 20.5, footer, 7, align="center"))
        pages.append(page)
    return pages


def add_marks(page: PageLayout) -> None:
    for marker_id, rect in enumerate(marker_rects(page.width_mm, page.height_mm)):
        op = MarkerOp(marker_id, rect)
        page.markers.append(op)
        page.ops.append(op)
    page.qr = QrOp(page.identity.payload(), qr_rect(page.width_mm))
    page.ops.append(page.qr)
