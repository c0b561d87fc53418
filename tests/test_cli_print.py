"""The print and exercises commands as a teacher runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main
from worksheets.exercises.registry import FAMILIES
from worksheets.key import KEY_SCHEMA, load_key

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "linear-layer.yaml"


def test_exercises_lists_every_family_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercises"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(FAMILIES)
    for name, line in zip(FAMILIES, lines, strict=True):
        assert line.startswith(name) and "[" in line


def test_print_copies_writes_pdf_and_key(tmp_path: Path) -> None:
    assert main(["print", str(EXAMPLE), "--copies", "3", "--out", str(tmp_path)]) == 0
    key = load_key(tmp_path / "key.json")
    assert key["schema"] == KEY_SCHEMA
    assert len(key["variants"]) == 3
    assert (tmp_path / "worksheets.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "answer-key.pdf").stat().st_size > 1000
    for index, page in enumerate(key["pages"]):
        assert page["pdf_page"] == index
        for field in page["fields"]:
            assert {"id", "bbox_mm", "expected"} <= set(field)
            assert isinstance(field["expected"], str) and len(field["bbox_mm"]) == 4


def test_print_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["print", str(EXAMPLE), "--copies", "2", "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a" / "key.json").read_bytes() == (tmp_path / "b" / "key.json").read_bytes()
    assert (tmp_path / "a" / "worksheets.pdf").read_bytes() == (
        tmp_path / "b" / "worksheets.pdf").read_bytes()


def test_variants_get_different_numbers(tmp_path: Path) -> None:
    assert main(["print", str(EXAMPLE), "--copies", "4", "--out", str(tmp_path)]) == 0
    key = json.loads((tmp_path / "key.json").read_text())
    givens = [json.dumps([e["givens"] for e in v["exercises"]]) for v in key["variants"]]
    assert len(set(givens)) > 1


def test_print_with_roster(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name\n7,Grace Hopper\n8,Edsger Dijkstra\n")
    assert main(["print", str(EXAMPLE), "--students", str(roster), "--out",
                 str(tmp_path / "o")]) == 0
    key = load_key(tmp_path / "o" / "key.json")
    assert [v["student"]["student_id"] for v in key["variants"]] == ["7", "8"]


def test_bad_spec_is_one_clear_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("title: x\nexercises:\n  - family: dot_product\n    params: {length: 40}\n")
    assert main(["print", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "exercises.0" in err and "length" in err and "Traceback" not in err


def test_load_key_rejects_foreign_files(tmp_path: Path) -> None:
    from worksheets.errors import KeyFileError

    other = tmp_path / "key.json"
    other.write_text(json.dumps({"schema": "something/9"}))
    with pytest.raises(KeyFileError, match="unknown key schema"):
        load_key(other)
