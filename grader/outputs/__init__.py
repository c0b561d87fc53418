"""Everything a teacher gets back from grading, each a view of one :class:`ClassResults`.

``write_all`` fills an output folder::

    results.json              the machine-readable record (schema papergrade.results/1)
    gradebook.csv             one row per student (format chosen by ``gradebook_format``)
    fields.csv                one row per student and answer field
    students/<student_id>.pdf annotated pages per student (unidentified-<n>.pdf when unknown)
    report.html               item analysis, self-contained
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from grader.outputs.annotate import write_student_pdfs
from grader.outputs.common import A4_MM
from grader.outputs.fields_csv import write_fields_csv
from grader.outputs.gradebook import GRADEBOOK_FORMATS, write_gradebook
from grader.outputs.report import write_report
from grader.outputs.results_json import results_document, write_results_json
from grader.results import ClassResults

__all__ = ["GRADEBOOK_FORMATS", "results_document", "write_all"]


def write_all(
    results: ClassResults,
    out_dir: Path,
    gradebook_format: str = "default",
    *,
    page_size_mm: tuple[float, float] = A4_MM,
    generated: datetime | None = None,
) -> dict[str, Path]:
    """Write every output into ``out_dir``; returns {relative name: path}.

    ``generated`` stamps results.json, the report and the PDFs (now, in UTC, by default);
    pass a fixed time for byte-identical output.  results.json is written last, so a reader
    that waits for it finds the other files complete.
    """
    if gradebook_format not in GRADEBOOK_FORMATS:
        known = ", ".join(GRADEBOOK_FORMATS)
        raise ValueError(f"unknown gradebook format {gradebook_format!r}; choose one of: {known}")
    stamp = generated or datetime.now(UTC)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "gradebook.csv": write_gradebook(results, out_dir / "gradebook.csv", gradebook_format),
        "fields.csv": write_fields_csv(results, out_dir / "fields.csv"),
    }
    written.update(write_student_pdfs(results, out_dir / "students", stamp, page_size_mm))
    written["report.html"] = write_report(results, out_dir / "report.html", stamp)
    written["results.json"] = write_results_json(results, out_dir / "results.json", stamp)
    return written
