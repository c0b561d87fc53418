"""The answer key (key.json): everything the grader needs, and nothing it must recompute.

Schema ``papergrade.key/1`` (see docs/key-format.md).  Every PDF page, in order, lists its
QR payload, markers and answer fields with ``id``, ``bbox_mm`` = [x, y, width, height] from the
page's top-left corner and ``expected`` (a string).  Each variant keeps its exercises' givens so
that grading can re-run the reference solver on a student's own earlier answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from worksheets.build import ClassSet, PlannedExercise, Variant, expected_answers
from worksheets.errors import KeyFileError
from worksheets.layout import PageLayout
from worksheets.marks import ARUCO_DICTIONARY_NAME

KEY_SCHEMA = "papergrade.key/1"


def exercise_entry(planned: PlannedExercise) -> dict[str, Any]:
    answers = expected_answers(planned)
    share = planned.points / len(planned.instance.fields)
    return {
        "id": planned.exercise_id,
        "family": planned.instance.family,
        "title": planned.title,
        "points": planned.points,
        "params": planned.params,
        "givens": planned.instance.givens,
        "fields": [
            {
                "name": f.name,
                "id": f"{planned.exercise_id}.{f.name}",
                "label": f.label,
                "expected": answers[f.name][1],
                "value": answers[f.name][0],
                "decimals": f.decimals,
                "tolerance": f.tolerance.to_json(),
                "depends_on": [f"{planned.exercise_id}.{d}" for d in f.depends_on],
                "points": round(share * f.points, 4),
            }
            for f in planned.instance.fields
        ],
    }


def page_entry(pdf_page: int, variant: Variant, page: PageLayout,
               fields_by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert page.qr is not None
    return {
        "pdf_page": pdf_page,
        "variant": variant.index,
        "page_number": page.identity.page_number,
        "page_count": len(variant.pages),
        "size_mm": [page.width_mm, page.height_mm],
        "qr": {"payload": page.qr.payload, "bbox_mm": page.qr.rect.as_list()},
        "markers": [{"id": m.marker_id, "bbox_mm": m.rect.as_list()} for m in page.markers],
        "student_number_boxes": [
            {"id": f"student_number.{i + 1}", "bbox_mm": r.as_list()}
            for i, r in enumerate(page.student_number_boxes)
        ],
        "fields": [
            {**fields_by_id[placed.field_id], "exercise": placed.exercise_id,
             "bbox_mm": placed.rect.as_list()}
            for placed in page.fields
        ],
    }


def build_key(class_set: ClassSet) -> dict[str, Any]:
    spec = class_set.spec
    variants: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    for variant in class_set.variants:
        exercises = [exercise_entry(p) for p in variant.exercises]
        fields_by_id = {f["id"]: f for e in exercises for f in e["fields"]}
        first_page = len(pages)
        for page in variant.pages:
            pages.append(page_entry(len(pages), variant, page, fields_by_id))
        variants.append({
            "index": variant.index,
            "student": variant.student.model_dump() if variant.student else None,
            "pdf_pages": list(range(first_page, len(pages))),
            "exercises": exercises,
        })
    return {
        "schema": KEY_SCHEMA,
        "worksheet_id": class_set.worksheet_id,
        "title": spec.title,
        "class_name": spec.class_name,
        "paper": {"name": spec.paper, "size_mm": list(spec.paper_mm)},
        "seed": spec.seed,
        "carry_forward": spec.carry_forward,
        "credit_expected_answers": spec.credit_expected_answers,
        "markers": {"dictionary": ARUCO_DICTIONARY_NAME, "ids": list(range(8))},
        "spec": spec.model_dump(mode="json"),
        "variants": variants,
        "pages": pages,
    }


def write_key(class_set: ClassSet, path: Path) -> dict[str, Any]:
    key = build_key(class_set)
    path.write_text(json.dumps(key, indent=1, ensure_ascii=False), encoding="utf-8")
    return key


# What grading reads from a key before anything else; the rest is checked where it is used.
KEY_PARTS: dict[str, type] = {"worksheet_id": str, "paper": dict, "variants": list, "pages": list}


def load_key(path: Path) -> dict[str, Any]:
    """Read and sanity-check a key.json; problems become a KeyFileError with advice."""
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path} is not valid JSON ({exc}); reprint to regenerate it") from None
    except UnicodeDecodeError:
        raise KeyFileError(
            f"{path} is not a key.json (not text: a photo or PDF given as --key?); use the "
            "key.json written by 'papergrade print' alongside the PDF"
        ) from None
    if not isinstance(key, dict) or key.get("schema") != KEY_SCHEMA:
        found = key.get("schema") if isinstance(key, dict) else None
        raise KeyFileError(
            f"{path}: unknown key schema {found!r} (this version reads {KEY_SCHEMA}); "
            "use the key.json written by 'papergrade print' alongside the PDF"
        )
    missing = [name for name, kind in KEY_PARTS.items() if not isinstance(key.get(name), kind)]
    if missing:
        raise KeyFileError(
            f"{path}: the key lacks {', '.join(missing)} (edited or cut short?); use the "
            "key.json written by 'papergrade print' alongside the PDF"
        )
    return key

