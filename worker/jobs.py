"""Grading a batch of uploads: the service layer the CLI (and, once built, Celery tasks and web
views) share.

``grade_batch`` decodes every upload, grades every page (in worker processes when ``jobs`` > 1),
keeps the originals, stores every page result (errors included, duplicates recognised,
retakes replacing earlier photos) and regenerates the outputs from the store, so a teacher's
later overrides and a re-run give the same files.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from grader.grade import (
    PHOTOCOPIED_NOTE,
    GradedPage,
    ReaderLike,
    grade_page,
    link_copies,
    roster_of,
)
from grader.io import InputFailure, iter_input_files, iter_pages
from grader.keyindex import KeyIndex
from grader.outputs import write_all
from grader.results import ClassResults, PageResult, StudentRef
from worker.store import Store, open_store
from worksheets.errors import OutputFolderError
from worksheets.key import load_key
from worksheets.spec import load_roster

PAGE_IMAGE_QUALITY = 80
logger = logging.getLogger(__name__)


# Imported once by the fork server (see worker_context); a missing one is imported later.
WORKER_PRELOAD = ["worker.jobs", "grader.read", "onnxruntime"]


def worker_context() -> multiprocessing.context.BaseContext:
    """How grading workers are started: never by a plain fork of this process.

    A child forked from a process whose OpenCV or onnxruntime thread pools have run inherits
    their locks held by threads that do not exist in the child, and hangs on its first image
    operation (a CLI that simulated photos first, a web server, a notebook).  A fork server
    forks from a clean process instead; where there is none (Windows), spawn.  The server
    imports the grading modules once (no image work, so no threads), so that each worker
    starts without importing them again.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


@dataclass(frozen=True)
class GradeRequest:
    """What a teacher asks for: a key, uploads and where results go."""

    key_path: Path
    inputs: Sequence[Path]
    out_dir: Path
    roster_csv: Path | None = None
    database_url: str | None = None
    gradebook_format: str = "default"
    jobs: int = 1
    pdf_dpi: int = 200
    # The reader's confidence below which a reading goes to review (None: the model's own,
    # calibrated for at most 1 wrong reading in 500 accepted).
    review_threshold: float | None = None


@dataclass
class PageDone:
    """One processed page as the batch reports it."""

    index: int
    result: PageResult
    upload_path: Path | None


@dataclass
class GradeSummary:
    worksheet_id: str
    pages: int = 0
    graded: int = 0
    duplicates: int = 0
    replaced: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_pages: list[tuple[str, str]] = field(default_factory=list)
    students: int = 0
    fields_in_review: int = 0
    # Readings the reader doubted, credited as the expected answer (credit_expected_answers).
    fields_credited: int = 0
    identity_reviews: int = 0
    # The worksheet asks to credit such readings, but the reader has no key-match threshold.
    crediting_unavailable: bool = False
    seconds: float = 0.0
    outputs: dict[str, Path] = field(default_factory=dict)


# --- per process ---------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(
    key_path: str, roster: list[tuple[str, str]], out_dir: str, dpi: int,
    review_threshold: float | None,
) -> None:
    """Load the key and the reader once per process (not once per page)."""
    from grader.read import Reader

    cv2.setNumThreads(1)
    _STATE.update(key_index=KeyIndex.load(Path(key_path)),
                  reader=Reader(threshold=review_threshold),
                  roster=[StudentRef(i, n) for i, n in roster], out_dir=Path(out_dir), dpi=dpi)


def _grade_file(path: str) -> list[tuple[PageResult, str | None]]:
    return list(grade_file(Path(path), _STATE["key_index"], _STATE["reader"], _STATE["roster"],
                           _STATE["out_dir"], _STATE["dpi"]))


def grade_file(
    path: Path,
    key_index: KeyIndex,
    reader: ReaderLike,
    roster: Sequence[StudentRef],
    out_dir: Path,
    pdf_dpi: int = 200,
) -> Iterator[tuple[PageResult, str | None]]:
    """Every page of one upload (a photo, a PDF, a zip), graded, with its images saved."""
    for item in iter_pages([path], pdf_dpi=pdf_dpi):
        if isinstance(item, InputFailure):
            yield failure_result(item), None
            continue
        try:
            graded = grade_page(item.image, key_index, reader, item.source, item.sha256, roster)
            save_images(graded, out_dir)
        except Exception as exc:  # one page's bug must not sink the batch
            logger.exception("grading %s failed", item.source)
            yield internal_error(item.source, item.sha256, exc), item.member
            continue
        yield graded.result, item.member


def failure_result(failure: InputFailure) -> PageResult:
    return PageResult(failure.source, failure.error.code, failure.error.message)


def internal_error(source: str, sha256: str, exc: Exception) -> PageResult:
    """A page the grader itself failed on: kept, reported, and retried by uploading again."""
    return PageResult(
        source=source, status="internal_error", sha256=sha256,
        message=(f"{source}: the grader failed on this page ({type(exc).__name__}: {exc}); "
                 "the rest of the batch was graded. Upload this page again, and if it fails "
                 "again send it to the Papergrade maintainers."),
    )


def save_images(graded: GradedPage, out_dir: Path) -> None:
    """Keep each crop (for review) and the aligned page (for annotated PDFs)."""
    result = graded.result
    if not result.graded:
        return
    folder = out_dir / "crops" / result.sha256[:16]
    folder.mkdir(parents=True, exist_ok=True)
    for field_result in result.fields:
        crop = graded.crops.get(field_result.field_id)
        if crop is not None:
            path = folder / f"{field_result.field_id}.png"
            cv2.imwrite(str(path), crop)
            field_result.crop_path = str(path.resolve())
    if graded.aligned_image is not None:
        pages = out_dir / "pages"
        pages.mkdir(parents=True, exist_ok=True)
        path = pages / f"{result.sha256[:16]}.jpg"
        cv2.imwrite(str(path), graded.aligned_image, [cv2.IMWRITE_JPEG_QUALITY, PAGE_IMAGE_QUALITY])
        result.image_path = str(path.resolve())


# --- the batch -----------------------------------------------------------------------------


def resolve_roster(request: GradeRequest, key: dict[str, Any]) -> list[StudentRef]:
    if request.roster_csv is not None:
        return [StudentRef(s.student_id, s.name) for s in load_roster(request.roster_csv)]
    return roster_of(key)


def graded_pages(
    request: GradeRequest, key: dict[str, Any], roster: list[StudentRef],
    reader: ReaderLike | None,
) -> Iterator[tuple[Path, PageResult, str | None]]:
    """(upload file, page result, zip member) for every page, in parallel when asked."""
    files: list[Path] = []
    for item in iter_input_files(request.inputs, skip_dirs=[request.out_dir]):
        if isinstance(item, InputFailure):  # a folder that cannot be read
            yield item.path or Path(item.source), failure_result(item), None
        else:
            files.append(item)
    out_dir = request.out_dir.resolve()
    if request.jobs <= 1:
        if reader is None:
            from grader.read import Reader

            reader = Reader(threshold=request.review_threshold)
        key_index = KeyIndex([key])
        for path in files:
            for result, member in grade_file(path, key_index, reader, roster, out_dir,
                                             request.pdf_dpi):
                yield path, result, member
        return
    init = (str(request.key_path), [(s.student_id, s.name) for s in roster], str(out_dir),
            request.pdf_dpi, request.review_threshold)
    with ProcessPoolExecutor(request.jobs, mp_context=worker_context(), initializer=_init_worker,
                             initargs=init) as pool:
        for path, results in zip(files, pool.map(_grade_file, [str(f) for f in files]),
                                 strict=True):
            for result, member in results:
                yield path, result, member


def grade_batch(
    request: GradeRequest,
    reader: ReaderLike | None = None,
    progress: Callable[[PageDone, GradeSummary], None] | None = None,
) -> GradeSummary:
    """Grade every upload, store everything, write the outputs; returns the summary."""
    started = time.perf_counter()
    key = load_key(request.key_path)
    roster = resolve_roster(request, key)
    make_output_folder(request.out_dir)
    summary = GradeSummary(worksheet_id=key["worksheet_id"],
                           crediting_unavailable=crediting_unavailable(key, reader))
    with open_store(request.database_url, request.out_dir) as store:
        store.save_key(key)
        store.save_roster(key["worksheet_id"], roster)
        batch = store.start_batch(key["worksheet_id"])
        uploads: dict[Path, int] = {}
        results: list[tuple[int, PageResult]] = []
        for path, result, _member in graded_pages(request, key, roster, reader):
            if path not in uploads:
                uploads[path] = store_original(store, path)
            results.append((uploads[path], result))
            summary.pages += 1
            count(summary, result)
            if progress is not None:
                progress(PageDone(summary.pages, result, path), summary)
        link_copies([r for _, r in results])
        link_to_stored_copies(store, key, [r for _, r in results])
        for upload_id, result in results:
            saved = store.add_page_result(upload_id, result, worksheet_id=key["worksheet_id"],
                                          batch_id=batch)
            summary.duplicates += saved.duplicate_of is not None
            summary.replaced += len(saved.superseded)
        store.finish_batch(batch)
        snapshot = store.snapshot(key["worksheet_id"], with_history=True)
    summary.students = len(snapshot.by_student())
    count_reviews(summary, snapshot)
    summary.outputs = write_all(snapshot, request.out_dir, request.gradebook_format,
                                page_size_mm=tuple(key["paper"]["size_mm"]))
    summary.seconds = time.perf_counter() - started
    return summary


def link_to_stored_copies(store: Store, key: dict[str, Any],
                          pages: Sequence[PageResult]) -> None:
    """Later pages of numbered copies whose first page came in an earlier batch: the student
    the store knows for that copy, or identity review when several students wrote on it or
    none is known yet (so that no graded page sits unattributed without being asked about)."""
    known: dict[int, list[StudentRef]] = {}
    for page in pages:
        if (not page.graded or page.student is not None or page.identity_review
                or page.variant is None or key["variants"][page.variant].get("student")):
            continue
        if page.variant not in known:
            known[page.variant] = store.copy_students(key["worksheet_id"], page.variant)
        students = known[page.variant]
        if len(students) == 1:
            page.student, page.identity_source = students[0], "student_number"
        else:
            page.identity_review = True
            page.message = PHOTOCOPIED_NOTE if students else UNNUMBERED_NOTE


UNNUMBERED_NOTE = ("no page 1 of this printed copy, where the student number is written, has "
                   "been graded, so whose page this is is not known: grade its page 1 too, or "
                   "say whose it is in review")


def make_output_folder(folder: Path) -> None:
    """Create the results folder, or say why it cannot be (before any page is graded)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputFolderError(
            f"{folder} is a file, not a folder; give --out a folder for the results"
        ) from None
    except OSError as exc:
        raise OutputFolderError(
            f"cannot create the results folder {folder}: {exc.strerror}; choose another --out"
        ) from None


def store_original(store: Store, path: Path) -> int:
    """Keep the uploaded file; a path that cannot be read is kept as its name only."""
    try:
        return int(store.store_upload(path, path.name).upload_id)
    except OSError:
        return int(store.store_upload(b"", f"{path.name} (unreadable)").upload_id)


def count(summary: GradeSummary, result: PageResult) -> None:
    if result.graded:
        summary.graded += 1
    else:
        summary.errors[result.status] += 1
        summary.error_pages.append((result.source, result.message))


def crediting_unavailable(key: dict[str, Any], reader: ReaderLike | None) -> bool:
    """Whether the worksheet asks to credit doubted readings of the expected answer while the
    reader (the packaged one where none is given) has no calibrated key-match threshold, so
    that those readings wait in review all the same."""
    if not key.get("credit_expected_answers"):
        return False
    if reader is None:
        from grader.read import packaged_key_match_threshold

        return packaged_key_match_threshold() is None
    return getattr(reader, "key_match_threshold", None) is None


def count_reviews(summary: GradeSummary, results: ClassResults) -> None:
    """What waits for a teacher in the results folder: only pages that count (a duplicate's
    fields are its original's), and pages of earlier batches too, as `papergrade review`
    walks them all."""
    pages = results.graded_pages()
    summary.fields_in_review = len(results.review_queue())
    summary.fields_credited = sum(f.reader_unsure and f.verdict == "correct"
                                  for p in pages for f in p.fields)
    summary.identity_reviews = sum(p.identity_review for p in pages)


def regenerate_outputs(out_dir: Path, worksheet_id: str | None = None,
                       database_url: str | None = None,
                       gradebook_format: str = "default") -> ClassResults:
    """Rewrite every output from the store (after reviews or overrides)."""
    with open_store(database_url, out_dir) as store:
        if worksheet_id is None:
            worksheet_id = store.list_worksheets()[-1][0]
        snapshot = store.snapshot(worksheet_id, with_history=True)
        key = store.get_key(worksheet_id)
    write_all(snapshot, out_dir, gradebook_format, page_size_mm=tuple(key["paper"]["size_mm"]))
    return snapshot


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

