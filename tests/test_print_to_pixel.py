"""Printed pages, rasterised by poppler, must match key.json to the pixel."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.print_support import all_boxes, edge_offsets_mm, rasterize, spec_with_every_family
from worksheets.marks import PageIdentity, aruco_dictionary, parse_payload
from worksheets.publish import publish
from worksheets.spec import Student

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None,
                                reason="poppler-utils (pdftoppm) is not installed")

DPIS = [100, 150, 300]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Two roster students (three exercises) and one numbered copy with every family."""
    import json

    out = tmp_path_factory.mktemp("printed")
    students = [Student(student_id="1001", name="Ada Lovelace"),
                Student(student_id="1002", name="Alan Turing")]
    short = spec_with_every_family().model_copy(update={"exercises": spec_with_every_family(
    ).exercises[:3]})
    result = publish(short, out / "roster", students=students)
    key = json.loads(result.key_json.read_text())
    copy = publish(spec_with_every_family(seed=8, paper="letter"), out / "copy", copies=1)
    key_copy = json.loads(copy.key_json.read_text())
    return {"roster": (key, result.worksheets_pdf), "copy": (key_copy, copy.worksheets_pdf)}, out


@pytest.fixture(scope="module")
def rasters(printed: tuple[dict[str, Any], Path]) -> dict[tuple[str, int], list[np.ndarray]]:
    sets, out = printed
    images = {}
    for name, (_key, pdf) in sets.items():
        for dpi in DPIS:
            folder = out / f"{name}-{dpi}"
            folder.mkdir()
            images[(name, dpi)] = rasterize(pdf, dpi, folder)
    return images


@pytest.mark.parametrize("dpi", DPIS)
@pytest.mark.parametrize("which", ["roster", "copy"])
def test_every_qr_decodes_to_its_own_payload(printed, rasters, which: str, dpi: int) -> None:
    key, _pdf = printed[0][which]
    pages = rasters[(which, dpi)]
    assert len(pages) == len(key["pages"])
    detector = cv2.QRCodeDetector()
    for image, page in zip(pages, key["pages"], strict=True):
        text, _points, _ = detector.detectAndDecode(image)
        assert text == page["qr"]["payload"], f"page {page['pdf_page']} at {dpi} dpi"
        identity = parse_payload(text)
        assert identity is not None
        assert identity.worksheet_id == key["worksheet_id"]
        assert (identity.variant, identity.page_number) == (page["variant"], page["page_number"])


@pytest.mark.parametrize("dpi", DPIS)
@pytest.mark.parametrize("which", ["roster", "copy"])
def test_every_marker_is_found_where_the_key_says(printed, rasters, which: str, dpi: int) -> None:
    key, _pdf = printed[0][which]
    detector = cv2.aruco.ArucoDetector(aruco_dictionary(), cv2.aruco.DetectorParameters())
    px_per_mm = dpi / 25.4
    for image, page in zip(rasters[(which, dpi)], key["pages"], strict=True):
        corners, ids, _ = detector.detectMarkers(image)
        assert ids is not None
        found = {int(i): c.reshape(4, 2) for i, c in zip(ids.ravel(), corners, strict=True)}
        assert set(found) == {m["id"] for m in page["markers"]}
        for marker in page["markers"]:
            x, y, w, h = marker["bbox_mm"]
            expected = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
            # ArUco corners are pixel-centre coordinates; +0.5 px converts to page edges.
            measured = (found[marker["id"]] + 0.5) / px_per_mm
            assert np.abs(measured - expected).max() < 0.5, (marker, dpi)


@pytest.mark.parametrize("dpi", DPIS)
@pytest.mark.parametrize("which", ["roster", "copy"])
def test_every_box_is_within_half_a_millimetre(printed, rasters, which: str, dpi: int) -> None:
    key, _pdf = printed[0][which]
    px_per_mm = dpi / 25.4
    checked = 0
    for image, page in zip(rasters[(which, dpi)], key["pages"], strict=True):
        for box_id, bbox in all_boxes(page):
            offsets = edge_offsets_mm(image, bbox, px_per_mm)
            assert max(abs(o) for o in offsets) <= 0.5, (page["pdf_page"], box_id, offsets)
            checked += 1
    assert checked > 0


def test_roster_pages_name_their_student_and_copies_ask_for_a_number(printed) -> None:
    roster_key, _ = printed[0]["roster"]
    copy_key, _ = printed[0]["copy"]
    assert [v["student"]["name"] for v in roster_key["variants"]] == ["Ada Lovelace",
                                                                       "Alan Turing"]
    assert all(not p["student_number_boxes"] for p in roster_key["pages"])
    first_pages = [p for p in copy_key["pages"] if p["page_number"] == 1]
    assert all(len(p["student_number_boxes"]) == 6 for p in first_pages)


def test_answer_boxes_are_big_enough_for_handwriting(printed) -> None:
    for key, _pdf in printed[0].values():
        for page in key["pages"]:
            for _box_id, (_x, _y, w, h) in all_boxes(page):
                assert h >= 9.0 and w >= 9.0


def test_student_and_answer_key_payloads_differ_and_round_trip() -> None:
    page = PageIdentity("48E5A9FD", 3, 2)
    key_page = page.of_answer_key()
    assert page.payload() == "PG1:48E5A9FD:V0003:P2:" + page.payload()[-1]
    assert ":V0003:K2:" in key_page.payload() and key_page.payload() != page.payload()
    assert parse_payload(page.payload()) == page and not page.answer_key
    assert parse_payload(key_page.payload()) == key_page and key_page.answer_key
    # A K for a P (or back) without its own check character is a misread, not a page.
    assert parse_payload(page.payload().replace(":P2:", ":K2:")) is None
