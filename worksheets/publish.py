"""Produce a class set on disk: worksheets.pdf, answer-key.pdf and key.json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from worksheets.build import ClassSet, build_class_set
from worksheets.errors import SpecError
from worksheets.key import write_key
from worksheets.layout import CONTENT_LEFT_MM, PageLayout, QrOp, TextOp
from worksheets.render import render_pdf
from worksheets.spec import Student, WorksheetSpec


@dataclass(frozen=True)
class PrintedSet:
    worksheets_pdf: Path
    answer_key_pdf: Path
    key_json: Path
    variants: int
    pages: int


def with_answers(page: PageLayout, answers: dict[str, str]) -> PageLayout:
    """A copy of the page with each expected answer printed inside its box (the teacher's key).

    Its QR names the answer key's page (see :meth:`PageIdentity.of_answer_key`), so a key
    page scanned with the class's sheets is refused instead of graded as that student's
    perfect work, and it says so in print beside the footer.
    """
    identity = page.identity.of_answer_key()
    qr = QrOp(identity.payload(), page.qr.rect) if page.qr is not None else None
    ops = [qr if op is page.qr and qr is not None else op for op in page.ops]
    extra = [
        TextOp(f.rect.x + f.rect.w / 2, f.rect.y + f.rect.h * 0.68, answers[f.field_id], 14,
               bold=True, align="center")
        for f in page.fields
    ]
    label = TextOp(CONTENT_LEFT_MM, page.height_mm - 20.5, ANSWER_KEY_LABEL, 9, bold=True)
    return replace(page, identity=identity, qr=qr, ops=[*ops, *extra, label])


ANSWER_KEY_LABEL = "ANSWER KEY"


def answer_pages(class_set: ClassSet, key: dict[str, object]) -> list[PageLayout]:
    pages = key["pages"]
    assert isinstance(pages, list)
    all_pages = [p for v in class_set.variants for p in v.pages]
    return [
        with_answers(page, {f["id"]: f["expected"] for f in entry["fields"]})
        for page, entry in zip(all_pages, pages, strict=True)
    ]


def publish(
    spec: WorksheetSpec,
    out_dir: Path,
    students: list[Student] | None = None,
    copies: int | None = None,
    progress: Callable[[str], None] = lambda _message: None,
) -> PrintedSet:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    class_set = build_class_set(spec, students, copies)
    progress(f"planned {len(class_set.variants)} variant(s), {class_set.page_count} page(s)")
    key_path = out_dir / "key.json"
    key = write_key(class_set, key_path)
    worksheets_pdf = out_dir / "worksheets.pdf"
    render_pdf((p for v in class_set.variants for p in v.pages), worksheets_pdf, spec.title)
    progress(f"wrote {worksheets_pdf}")
    answer_key_pdf = out_dir / "answer-key.pdf"
    render_pdf(answer_pages(class_set, key), answer_key_pdf, f"{spec.title} (answer key)")
    progress(f"wrote {answer_key_pdf}")
    return PrintedSet(worksheets_pdf, answer_key_pdf, key_path, len(class_set.variants),
                      class_set.page_count)
