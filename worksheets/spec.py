"""The worksheet spec: one validated model for the YAML a teacher writes.

Defaults live here and only here.  ``load_spec`` turns any problem into a :class:`SpecError`
that names the field and says what is wrong, so the CLI never shows a traceback.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from worksheets.errors import SpecError
from worksheets.exercises.registry import FAMILIES, get_family

PAPER_SIZES_MM: dict[str, tuple[float, float]] = {"A4": (210.0, 297.0), "letter": (215.9, 279.4)}


class Student(BaseModel):
    model_config = ConfigDict(extra="forbid")

    student_id: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=80)


class ExerciseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    family: str = Field(description="exercise family name, see 'papergrade exercises'")
    points: float = Field(4.0, gt=0, le=100, description="points for the whole exercise")
    params: dict[str, Any] = Field(default_factory=dict, description="family parameters")
    title: str | None = Field(None, max_length=80, description="heading; defaults to the family's")

    @field_validator("family")
    @classmethod
    def family_must_exist(cls, value: str) -> str:
        if value not in FAMILIES:
            known = ", ".join(sorted(FAMILIES))
            raise ValueError(f"unknown exercise family {value!r} (known: {known})")
        return value

    @model_validator(mode="after")
    def params_must_fit_family(self) -> ExerciseSpec:
        try:
            get_family(self.family).parse_params(self.params)
        except ValidationError as exc:
            problems = "; ".join(_describe(err) for err in exc.errors())
            raise ValueError(f"params for {self.family}: {problems}") from None
        return self


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    copies: int | None = Field(None, ge=1, le=2000, description="numbered copies")
    roster: str | None = Field(None, description="CSV with student_id,name (one variant each)")
    different_numbers: bool = Field(True, description="each variant gets its own numbers")

    @model_validator(mode="after")
    def one_source(self) -> VariantSpec:
        if self.copies is not None and self.roster is not None:
            raise ValueError("give either copies or roster, not both")
        return self


class WorksheetSpec(BaseModel):
    """A worksheet as a teacher describes it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=80)
    class_name: str = Field("", max_length=60)
    paper: Literal["A4", "letter"] = "A4"
    seed: int = Field(0, ge=0, description="same seed, same numbers")
    carry_forward: bool = Field(True, description="award follow-through credit when grading")
    credit_expected_answers: bool = Field(
        False,
        description="credit a reading the reader is unsure of when it is exactly the expected "
        "answer and at least as confident as the reader's calibrated key-match threshold, "
        "instead of sending it to review (a grading policy: nothing printed changes)",
    )
    instructions: str = Field(
        "Write one number per box, large and clear. Use a leading - for negatives "
        "and a dot for decimals.",
        max_length=160,
    )
    variants: VariantSpec = Field(default_factory=VariantSpec)
    exercises: list[ExerciseSpec] = Field(min_length=1, max_length=30)

    @property
    def paper_mm(self) -> tuple[float, float]:
        return PAPER_SIZES_MM[self.paper]


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error.get("loc", ())) or "(top level)"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{location}: {message}"


def parse_spec(raw: Any, source: str = "spec") -> WorksheetSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a mapping of fields at the top level")
    try:
        return WorksheetSpec.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  - {_describe(err)}" for err in exc.errors())
        raise SpecError(f"{source} is not a valid worksheet spec:\n{lines}") from None


def load_spec(path: str | Path) -> WorksheetSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError(
            f"{path} is not a text file; a worksheet spec is YAML text (see examples/)"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML: {exc}") from None
    return parse_spec(raw, str(path))


def roster_text(data: bytes) -> str:
    """A roster file's text: UTF-8 (with or without a byte-order mark), else Windows-1252,
    which is how Excel on Windows saves "CSV (Comma delimited)" in Western locales."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def roster_delimiter(text: str) -> str:
    """``;`` where the header row uses it and no comma (Excel's CSV in locales that write
    decimal commas), else ``,``."""
    header = text.splitlines()[0] if text else ""
    return ";" if ";" in header and "," not in header else ","


def load_roster(path: str | Path) -> list[Student]:
    """Students from a CSV with a header row ``student_id,name``."""
    path = Path(path)
    try:
        text = roster_text(path.read_bytes())
    except OSError as exc:
        raise SpecError(f"cannot read roster {path}: {exc.strerror}") from None
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=roster_delimiter(text)))
    if not rows or not {"student_id", "name"} <= set(rows[0]):
        raise SpecError(f"{path}: the roster needs a header row 'student_id,name'")
    students: list[Student] = []
    seen: set[str] = set()
    for line_number, row in enumerate(rows, start=2):
        try:
            student = Student(student_id=row["student_id"].strip(), name=row["name"].strip())
        except ValidationError as exc:
            raise SpecError(f"{path} line {line_number}: {_describe(exc.errors()[0])}") from None
        if student.student_id in seen:
            raise SpecError(f"{path} line {line_number}: student_id {student.student_id} repeats")
        seen.add(student.student_id)
        students.append(student)
    return students


def spec_json_schema() -> str:
    return json.dumps(WorksheetSpec.model_json_schema(), indent=2)
