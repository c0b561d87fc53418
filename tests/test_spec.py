"""The worksheet spec: defaults, validation errors that name the field, rosters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worksheets.build import worksheet_id_for
from worksheets.errors import KeyFileError, SpecError
from worksheets.key import load_key
from worksheets.spec import load_roster, load_spec, parse_spec, spec_json_schema


def minimal() -> dict:
    return {"title": "T", "exercises": [{"family": "dot_product"}]}


def test_defaults_fill_in_everything_else() -> None:
    spec = parse_spec(minimal())
    assert spec.paper == "A4" and spec.paper_mm == (210.0, 297.0)
    assert spec.seed == 0 and spec.carry_forward is True
    assert spec.credit_expected_answers is False
    assert spec.exercises[0].points == 4.0


def test_crediting_expected_answers_keeps_the_printed_worksheet_id() -> None:
    """A grading policy changed after printing must still match the sheets' QR codes."""
    spec = parse_spec(minimal())
    crediting = parse_spec({**minimal(), "credit_expected_answers": True})
    assert worksheet_id_for(spec, None, 2) == worksheet_id_for(crediting, None, 2)
    assert worksheet_id_for(spec, None, 2) != worksheet_id_for(spec, None, 3)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"paper": "A5"}, "paper"),
        ({"exercises": []}, "exercises"),
        ({"exercises": [{"family": "nope"}]}, "exercises.0.family"),
        ({"exercises": [{"family": "dot_product", "params": {"length": 99}}]}, "length"),
        ({"exercises": [{"family": "dot_product", "params": {"lenght": 3}}]}, "lenght"),
        ({"seed": -1}, "seed"),
        ({"colour": "red"}, "colour"),
        ({"variants": {"copies": 3, "roster": "r.csv"}}, "either copies or roster"),
    ],
)
def test_bad_specs_name_the_field(change: dict, names: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**minimal(), **change})
    assert names in str(info.value)


def test_paths_may_be_given_as_strings() -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    assert load_spec(str(examples / "linear-layer.yaml")).title
    assert load_roster(str(examples / "roster.csv"))


def test_load_spec_reports_yaml_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(scalar)


def test_roster_reads_students_and_rejects_duplicates(tmp_path: Path) -> None:
    good = tmp_path / "roster.csv"
    good.write_text("student_id,name\n1,Ada\n2, Alan \n", encoding="utf-8")
    assert [(s.student_id, s.name) for s in load_roster(good)] == [("1", "Ada"), ("2", "Alan")]
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text("student_id,name\n1,Ada\n1,Alan\n")
    with pytest.raises(SpecError, match="line 3"):
        load_roster(duplicate)
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("1,Ada\n")
    with pytest.raises(SpecError, match="student_id,name"):
        load_roster(headerless)


def test_rosters_as_excel_saves_them_are_read(tmp_path: Path) -> None:
    """Windows-1252 with semicolons (Excel in a decimal-comma locale), UTF-8 with a BOM."""
    ansi = tmp_path / "ansi.csv"
    ansi.write_bytes("student_id;name\r\n7;José Núñez\r\n8;\"Ørsted; Hans\"\r\n".encode("cp1252"))
    assert [(s.student_id, s.name) for s in load_roster(ansi)] == [
        ("7", "José Núñez"), ("8", "Ørsted; Hans")]
    bom = tmp_path / "bom.csv"
    bom.write_bytes("student_id,name\n9,\"Chen, Wei\"\n".encode("utf-8-sig"))
    assert [(s.student_id, s.name) for s in load_roster(bom)] == [("9", "Chen, Wei")]


def test_binary_files_given_as_spec_or_key_get_a_clear_error(tmp_path: Path) -> None:
    photo = tmp_path / "IMG_0412.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\xff\xfe")
    with pytest.raises(SpecError, match=r"IMG_0412\.jpg is not a text file"):
        load_spec(photo)
    with pytest.raises(KeyFileError, match=r"IMG_0412\.jpg is not a key\.json"):
        load_key(photo)
    cut = tmp_path / "key.json"
    cut.write_text('{"schema": "papergrade.key/1", "worksheet_id": "48E5A9FD", "pages": {}}')
    with pytest.raises(KeyFileError, match="lacks paper, variants, pages"):
        load_key(cut)


def test_json_schema_is_exported() -> None:
    schema = json.loads(spec_json_schema())
    assert "exercises" in schema["properties"]
    assert schema["properties"]["paper"]["default"] == "A4"
