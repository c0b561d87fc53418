"""report.html: item analysis for the teacher, one self-contained file.

Everything is inline (CSS and SVG charts; no scripts, fonts or images fetched from anywhere),
so the report opens offline, can be mailed as one attachment and prints as it looks.  All text
from the results passes through :func:`html.escape`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path

from grader.outputs.common import atomic_write_text, fmt_percent, fmt_points
from grader.outputs.results_json import page_note, page_status
from grader.outputs.sheets import (
    StudentSheet,
    build_sheets,
    max_points,
    percent,
    score_stats,
)
from grader.results import ClassResults, FieldResult

TOP_WRONG = 5
BAR_WIDTH = 120


@dataclass
class FieldStats:
    field_id: str
    exercise_id: str
    label: str
    order: tuple[int, int, int]
    verdicts: Counter[str] = field(default_factory=Counter)
    expected: set[str] = field(default_factory=set)
    wrong: Counter[str] = field(default_factory=Counter)
    mistakes: Counter[str] = field(default_factory=Counter)
    carried: int = 0

    @property
    def count(self) -> int:
        return sum(self.verdicts.values())

    def share(self, verdict: str) -> float:
        return self.verdicts[verdict] / self.count if self.count else 0.0

    def add(self, f: FieldResult) -> None:
        self.verdicts[f.verdict] += 1
        self.expected.add(f.expected)
        if f.verdict == "incorrect" and f.read is not None:
            self.wrong[f.read] += 1
        if f.mistake:
            self.mistakes[f.mistake] += 1
        self.carried += int(f.carried_forward)


def field_stats(results: ClassResults, sheets: list[StudentSheet]) -> list[FieldStats]:
    """Per field id across all counted pages, in the key's exercise order then page order."""
    exercise_rank = {e.exercise_id: i for i, e in enumerate(results.exercises)}
    stats: dict[str, FieldStats] = {}
    for sheet in sheets:
        for page in sheet.pages:
            for position, f in enumerate(page.fields):
                order = (exercise_rank.get(f.exercise_id, len(exercise_rank)),
                         page.page_number or 0, position)
                entry = stats.setdefault(
                    f.field_id, FieldStats(f.field_id, f.exercise_id, f.label, order)
                )
                entry.order = min(entry.order, order)
                entry.add(f)
    return sorted(stats.values(), key=lambda s: (s.order, s.field_id))


def _most_common(counter: Counter[str], limit: int | None = None) -> list[tuple[str, int]]:
    # Ties broken by the value itself so the report does not depend on input order.
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:limit] if limit is not None else ranked


def _counts_text(counter: Counter[str], limit: int | None = None) -> str:
    items = _most_common(counter, limit)
    if not items:
        return "—"
    return ", ".join(f"{escape(value)} ×{count}" for value, count in items)


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def share_bar(share: float, label: str, colour: str = "#1b8a3c") -> str:
    """A small inline bar (SVG prints even where browsers drop CSS backgrounds)."""
    width = round(BAR_WIDTH * max(0.0, min(1.0, share)))
    text = escape(f"{label}: {_pct(share)}")
    return (
        f'<svg class="bar" width="{BAR_WIDTH}" height="12" role="img" aria-label="{text}">'
        f"<title>{text}</title>"
        f'<rect x="0" y="0" width="{BAR_WIDTH}" height="12" fill="#e6e6e6"/>'
        f'<rect x="0" y="0" width="{width}" height="12" fill="{colour}"/></svg>'
        f" {_pct(share)}"
    )


def histogram_bins(percents: list[float]) -> list[int]:
    """Ten bins of ten percentage points; 100% falls in the last one."""
    bins = [0] * 10
    for value in percents:
        bins[min(9, max(0, int(value // 10)))] += 1
    return bins


def histogram_svg(percents: list[float]) -> str:
    bins = histogram_bins(percents)
    width, height, left, bottom, top = 560, 230, 36, 36, 16
    plot_w, plot_h = width - left - 10, height - bottom - top
    step = plot_w / len(bins)
    peak = max(bins) or 1
    summary = ", ".join(f"{10 * i}–{10 * i + 10}%: {n}" for i, n in enumerate(bins))
    parts = [
        f'<svg class="histogram" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' role="img" aria-labelledby="hist-title hist-desc">',
        '<title id="hist-title">Score histogram</title>',
        f'<desc id="hist-desc">Number of students per score band: {escape(summary)}</desc>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}"'
        ' stroke="#333"/>',
    ]
    for i, count in enumerate(bins):
        bar_h = plot_h * count / peak
        x = left + i * step
        y = top + plot_h - bar_h
        parts.append(
            f'<rect x="{x + 3:.1f}" y="{y:.1f}" width="{step - 6:.1f}" height="{bar_h:.1f}"'
            f' fill="#3465a4"><title>{10 * i}–{10 * i + 10}%: {count}</title></rect>'
        )
        if count:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle"'
                         f' font-size="11">{count}</text>')
        parts.append(f'<text x="{x + step / 2:.1f}" y="{top + plot_h + 14:.1f}"'
                     f' text-anchor="middle" font-size="10">{10 * i}–{10 * i + 10}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle"'
                 ' font-size="11">score (% of maximum)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(caption: str, header: list[str], rows: list[list[str]], css: str = "") -> str:
    """A table with a caption and column headers; cells are already escaped HTML."""
    head = "".join(f'<th scope="col">{h}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(header)}">none</td></tr>'
    cls = f' class="{css}"' if css else ""
    return (f"<table{cls}><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def summary_section(results: ClassResults, sheets: list[StudentSheet]) -> str:
    maximum = max_points(results)
    scored = [s for s in sheets if s.identified and s.total is not None]
    points = score_stats([s.total for s in scored if s.total is not None])
    pcts = score_stats([p for s in scored if (p := percent(s.total, maximum)) is not None])
    errors = [p for p in results.pages if not p.graded and p.counts]
    duplicates = [p for p in results.pages if p.duplicate_of is not None]
    replaced = [p for p in results.pages if p.replaced_by is not None]
    review = results.review_queue()
    missing = [s for s in sheets if s.in_roster and not s.pages]
    unidentified = [s for s in sheets if not s.identified]
    rows = [
        ["Students graded", str(points.count)],
        ["Roster students without pages", str(len(missing))],
        ["Unidentified page groups (left out of mean, median and histogram)",
         str(len(unidentified))],
        ["Maximum points", fmt_points(maximum)],
        ["Mean score", f"{fmt_points(points.mean)} ({fmt_percent(pcts.mean)}%)"
         if points.count else "—"],
        ["Median score", f"{fmt_points(points.median)} ({fmt_percent(pcts.median)}%)"
         if points.count else "—"],
        ["Lowest / highest", f"{fmt_points(points.minimum)} / {fmt_points(points.maximum)}"
         if points.count else "—"],
        ["Pages received", str(len(results.pages))],
        ["Pages graded", str(len(results.graded_pages()))],
        ["Pages with errors", str(len(errors))],
        ["Duplicate pages (counted once)", str(len(duplicates))],
        ["Pages replaced by a later photo", str(len(replaced))],
        ["Fields waiting for review", str(len(review))],
    ]
    body = "".join(f'<tr><th scope="row">{escape(k)}</th><td>{v}</td></tr>' for k, v in rows)
    table = f"<table><caption>Class summary</caption><tbody>{body}</tbody></table>"
    return f'<section id="summary"><h2>Summary</h2>{table}</section>'


def _measured(value: float | None, unit: str, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f} {unit}"


def photo_rows(results: ClassResults) -> list[list[str]]:
    """Graded pages with fields in review, most first, with how their photo measured."""
    counted = [(p, sum(f.verdict == "review" for f in p.fields)) for p in results.graded_pages()]
    in_review = sorted((pc for pc in counted if pc[1]), key=lambda pc: -pc[1])
    return [[escape(p.source), escape(p.student.name if p.student else "unidentified"), str(n),
             _measured(p.px_per_mm, "px/mm", 1), _measured(p.blur_mm, "mm", 2),
             "" if p.review_threshold is None else f"{p.review_threshold:.3f}"]
            for p, n in in_review]


PHOTO_CAPTION = ("Pages with fields in review, and how their photo measured (resolution at the "
                 "boxes; blur: how far printed edges spread). A distant or blurred photo is "
                 "held to a stricter reading threshold, so a sharper, closer photo of such a "
                 "page may clear its reviews")


def problems_section(results: ClassResults, sheets: list[StudentSheet]) -> str:
    not_counted = [p for p in results.pages if not p.graded or not p.counts]
    error_counts = Counter(page_status(p) for p in not_counted)
    error_rows = [[escape(p.source), f"<code>{escape(page_status(p))}</code>",
                   escape(page_note(p))] for p in not_counted]
    count_rows = [[f"<code>{escape(code)}</code>", str(n)]
                  for code, n in _most_common(error_counts)]
    review_rows = [[escape(p.student.name if p.student else "unidentified"),
                    escape(str(p.page_number or "")), escape(f.field_id),
                    escape(f.read if f.read is not None else "(blank)"),
                    f"{f.confidence:.2f}", escape(f.reason)]
                   for p, f in results.review_queue()]
    missing_rows = [[escape(s.student_id), escape(s.name)]
                    for s in sheets if s.in_roster and not s.pages]
    unidentified_rows = [[escape(s.key), escape(", ".join(p.source for p in s.pages))]
                         for s in sheets if not s.identified]
    return (
        '<section id="problems"><h2>Pages and fields that need attention</h2>'
        + _table("Pages not graded or not counted, by reason", ["Status", "Pages"], count_rows)
        + _table("Pages not graded or not counted", ["Source", "Status", "Message"],
                 error_rows)
        + _table("Fields waiting for review",
                 ["Student", "Page", "Field", "Read", "Confidence", "Reason"], review_rows)
        + _table(PHOTO_CAPTION, ["Source", "Student", "In review", "Resolution", "Blur",
                                 "Threshold"], photo_rows(results))
        + _table("Roster students without pages", ["Student ID", "Name"], missing_rows)
        + _table("Pages with no identified student", ["Group", "Sources"], unidentified_rows)
        + "</section>"
    )


def histogram_section(results: ClassResults, sheets: list[StudentSheet]) -> str:
    maximum = max_points(results)
    percents = [p for s in sheets if s.identified and (p := percent(s.total, maximum)) is not None]
    return (f'<section id="histogram"><h2>Score distribution</h2>'
            f"<figure>{histogram_svg(percents)}<figcaption>Students per band of ten percentage "
            f"points ({len(percents)} students).</figcaption></figure></section>")


def exercise_section(results: ClassResults, sheets: list[StudentSheet],
                     stats: list[FieldStats]) -> str:
    rows = []
    for exercise in results.exercises:
        mine = [s for s in stats if s.exercise_id == exercise.exercise_id]
        merged: Counter[str] = Counter()
        mistakes: Counter[str] = Counter()
        for s in mine:
            merged.update(s.verdicts)
            mistakes.update(s.mistakes)
        total = sum(merged.values())
        earned = [p for sheet in sheets
                  if (p := sheet.exercise_points(exercise.exercise_id)) is not None]
        mean = sum(earned) / len(earned) if earned else None
        rows.append([
            f"<code>{escape(exercise.exercise_id)}</code>", escape(exercise.title),
            fmt_points(exercise.points), fmt_points(mean) if mean is not None else "—",
            share_bar(merged["correct"] / total if total else 0.0, "correct"),
            share_bar(merged["review"] / total if total else 0.0, "sent to review", "#f08c00"),
            _counts_text(mistakes),
        ])
    header = ["Exercise", "Title", "Points", "Mean points", "Fields correct", "In review",
              "Mistake tags"]
    return ('<section id="exercises"><h2>Per exercise</h2>'
            + _table("Per exercise: share of answer fields correct", header, rows)
            + "</section>")


def field_section(stats: list[FieldStats]) -> str:
    rows = []
    for s in stats:
        expected = next(iter(s.expected)) if len(s.expected) == 1 else "varies by student"
        rows.append([
            f"<code>{escape(s.field_id)}</code>", escape(s.label), escape(expected),
            str(s.count), share_bar(s.share("correct"), "correct"),
            _pct(s.share("blank")), share_bar(s.share("review"), "sent to review", "#f08c00"),
            _counts_text(s.wrong, TOP_WRONG), _counts_text(s.mistakes), str(s.carried),
        ])
    header = ["Field", "Label", "Expected", "Answers", "Correct", "Blank", "In review",
              "Most common wrong answers", "Mistake tags", "Follow-through"]
    return ('<section id="fields"><h2>Per field</h2>'
            + _table("Per field: share correct, wrong answers and mistake tags", header, rows,
                     "fields")
            + "</section>")


def mistakes_section(stats: list[FieldStats]) -> str:
    overall: Counter[str] = Counter()
    for s in stats:
        overall.update(s.mistakes)
    rows = [[f"<code>{escape(tag)}</code>", str(n)] for tag, n in _most_common(overall)]
    return ('<section id="mistakes"><h2>Mistake tags</h2>'
            + _table("Mistake tags over all fields", ["Tag", "Fields"], rows) + "</section>")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1a1a1a;
line-height:1.4;max-width:72rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;
border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}
thead th{background:#f0f0f0}tbody th{font-weight:500;background:#fafafa}
td svg.bar{vertical-align:middle}figure{margin:1rem 0}
.meta{color:#555}code{font-size:.95em}
@media print{body{margin:0;max-width:none;font-size:10pt}section{break-inside:avoid-page}
table.fields{font-size:8pt}thead{display:table-header-group}
*{print-color-adjust:exact;-webkit-print-color-adjust:exact}}
"""


def report_html(results: ClassResults, generated: datetime) -> str:
    sheets = build_sheets(results)
    stats = field_stats(results, sheets)
    title = escape(f"{results.title}: item analysis")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{title}</h1><p class=\"meta\">Worksheet "
        f"<code>{escape(results.worksheet_id)}</code> · generated "
        f"{escape(generated.isoformat(timespec='seconds'))}</p></header><main>"
        + summary_section(results, sheets)
        + histogram_section(results, sheets)
        + exercise_section(results, sheets, stats)
        + field_section(stats)
        + mistakes_section(stats)
        + problems_section(results, sheets)
        + "</main></body></html>\n"
    )


def write_report(results: ClassResults, path: Path, generated: datetime) -> Path:
    return atomic_write_text(path, report_html(results, generated))
