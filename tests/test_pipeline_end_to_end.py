"""From files on disk to aligned pages: every input format through grader.io, the command.

Sheets are printed by the project, filled in and photographed or scanned by the simulator
(one capture per tier), saved the way phones and scanners save them, and read back through
``grader.io.iter_pages`` before ``align_page``.
"""

from __future__ import annotations

import argparse
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from grader import simulate
from grader.extract import crop_size, crop_to_photo
from grader.io import InputFailure, PageInput, iter_pages
from grader.keyindex import KeyIndex, KeyPage
from grader.pipeline import AlignOptions, align_page
from tests.print_support import rasterize
from worker.commands import align_cmd
from worksheets.publish import publish
from worksheets.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
DPI = 150
PPM = DPI / 25.4


@pytest.fixture(scope="module")
def sheet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KeyIndex, Path, list]]:
    """One copy of the two-page example: key index, the PDF, and each page's raster."""
    folder = tmp_path_factory.mktemp("sheet")
    printed = publish(load_spec(ROOT / "examples" / "linear-layer.yaml"), folder, None, 1,
                      progress=lambda message: None)
    rasters = rasterize(printed.worksheets_pdf, DPI, folder)
    yield KeyIndex.load(printed.key_json), printed.worksheets_pdf, rasters


def page_of(index: KeyIndex, pdf_page: int) -> KeyPage:
    return next(p for p in index.pages.values() if p.pdf_page == pdf_page)


def capture(sheet, pdf_page: int, tier: str, seed: int,
            frame: tuple[int, int] | None = (1600, 1200)) -> simulate.Capture:
    index, _, rasters = sheet
    page = page_of(index, pdf_page)
    rng = np.random.default_rng(seed)
    boxes = {b.box_id: list(b.rect) for b in page.all_boxes}
    answers = {b: str(int(rng.integers(-50, 500))) for b in boxes}
    return simulate.simulate_page(rasters[pdf_page], PPM, boxes, answers, tier, rng,
                                  frame_size=None if tier == "scan" else frame)


def centre_errors_mm(result, cap: simulate.Capture) -> list[float]:
    """How far (mm) each crop's centre is from the true box centre the simulator reports."""
    errors = []
    for fit in result.box_fits:
        quad = cap.box_quads[fit.box.box_id]
        to_crop = np.linalg.inv(crop_to_photo(fit.h, fit.box.rect))
        q = cv2.perspectiveTransform(quad.reshape(-1, 1, 2), to_crop).reshape(-1, 2)
        cw, ch = crop_size(fit.box.rect)
        errors.append(float(np.linalg.norm(q.mean(axis=0) - [(cw - 1) / 2, (ch - 1) / 2])) / 10)
    return errors


def save_heic_fast(image: np.ndarray, path: Path) -> Path:
    """HEIC as a phone writes it, with x265's fastest settings (the default takes seconds)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    rgb = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    rgb.save(path, format="HEIF", quality=70,
             enc_params={"preset": "ultrafast", "x265:ctu": "16"})
    return path


def test_every_input_format_is_aligned(sheet, tmp_path: Path) -> None:
    index, pdf, _ = sheet
    scan1, scan2 = capture(sheet, 0, "scan", 101), capture(sheet, 1, "scan", 102)
    phone = capture(sheet, 0, "phone", 103)
    hard = capture(sheet, 1, "hard", 107, frame=(1600, 1200))
    rgb = [cv2.cvtColor(c.image, cv2.COLOR_BGR2RGB) for c in (scan1, scan2)]
    files = {
        "phone.jpg": simulate.save_jpeg(phone.image, tmp_path / "phone.jpg", 90, 6),
        "hard.heic": save_heic_fast(hard.image, tmp_path / "hard.heic"),
        "scan.png": tmp_path / "scan.png",
        "scans.tif": tmp_path / "scans.tif",
    }
    cv2.imwrite(str(files["scan.png"]), scan1.image)
    Image.fromarray(rgb[0]).save(files["scans.tif"], save_all=True,
                                 append_images=[Image.fromarray(rgb[1])], compression="tiff_lzw")
    bundle = tmp_path / "class.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.write(files["phone.jpg"], "photos/IMG_0001.jpg")
        archive.write(files["scan.png"], "scan.png")
    inputs = [*files.values(), pdf, bundle]
    expected = {  # source -> printed page
        str(files["phone.jpg"]): 0, str(files["hard.heic"]): 1, str(files["scan.png"]): 0,
        f"{files['scans.tif']} page 1": 0, f"{files['scans.tif']} page 2": 1,
        f"{pdf} page 1": 0, f"{pdf} page 2": 1,
        f"{bundle}:photos/IMG_0001.jpg": 0, f"{bundle}:scan.png": 0,
    }
    items = list(iter_pages(inputs))
    assert not [i for i in items if isinstance(i, InputFailure)]
    seen = {}
    for item in items:
        assert isinstance(item, PageInput)
        result = align_page(item.image, index, AlignOptions(source=item.source))
        seen[item.source] = result.key_page.pdf_page
        assert all(c.shape == (160, 360) for c in result.crops.values())
    assert seen == expected


def test_exif_turned_photo_gives_centred_crops(sheet, tmp_path: Path) -> None:
    index, _, _ = sheet
    phone = capture(sheet, 0, "phone", 104)
    path = simulate.save_jpeg(phone.image, tmp_path / "turned.jpg", 92, exif_orientation=8)
    (item,) = list(iter_pages([path]))
    assert isinstance(item, PageInput)
    assert item.image.shape == phone.image.shape  # EXIF undone by grader.io
    result = align_page(item.image, index)
    assert max(centre_errors_mm(result, phone)) < 1.0


@pytest.mark.parametrize(("tier", "seed", "frame"), [
    ("scan", 105, None), ("phone", 106, (3264, 2448)), ("hard", 109, (3264, 2448)),
])
def test_one_sheet_per_tier_end_to_end(sheet, tmp_path: Path, tier, seed, frame) -> None:
    index, _, _ = sheet
    cap = capture(sheet, 0, tier, seed, frame)
    path = simulate.save_jpeg(cap.image, tmp_path / f"{tier}.jpg", 90)
    (item,) = list(iter_pages([path]))
    assert isinstance(item, PageInput)
    result = align_page(item.image, index, AlignOptions(source=item.source))
    assert result.identity == page_of(index, 0).identity
    assert max(centre_errors_mm(result, cap)) < 1.0
    assert len(result.student_number_crops) == 6


def run_align(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    align_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["align", *argv])
    return int(args.func(args))


def test_align_command_writes_crops_and_overlays(sheet, tmp_path: Path, capsys) -> None:
    index, pdf, _ = sheet
    key = tmp_path / "key.json"
    key.write_text(Path(pdf.parent / "key.json").read_text())
    photo = simulate.save_jpeg(capture(sheet, 1, "phone", 108).image, tmp_path / "p.jpg", 90)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a picture")
    out, debug = tmp_path / "crops", tmp_path / "debug"
    code = run_align("--key", str(key), str(photo), str(junk), str(pdf), "--out", str(out),
                     "--debug", str(debug))
    text = capsys.readouterr().out
    assert code == 0
    page = page_of(index, 1)
    ident = page.identity
    assert (f"{photo} -> worksheet {ident.worksheet_id} variant {ident.variant} page "
            f"{ident.page_number}, {len(page.fields)} fields, residual") in text
    assert f"{junk} -> ERROR [unsupported_format]" in text
    assert text.strip().splitlines()[-1] == "Aligned 3 of 4 page(s); errors: unsupported_format 1"
    crops = sorted(p.name for p in (out / "001_p.jpg").iterdir())
    assert crops == sorted(f"{f.box_id}.png" for f in page.fields)
    first_page = out / "003_worksheets.pdf_page_1"
    assert len(list(first_page.glob("student_number.*.png"))) == 6
    overlays = sorted(p.name for p in debug.iterdir())
    assert "001_p.jpg.overlay.png" in overlays and "001_p.jpg.crops.png" in overlays
    assert cv2.imread(str(debug / "001_p.jpg.overlay.png")) is not None


def test_align_command_fails_only_when_nothing_aligns(sheet, tmp_path: Path, capsys) -> None:
    _, pdf, _ = sheet
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((1200, 900), 255, np.uint8))
    code = run_align("--key", str(pdf.parent / "key.json"), str(blank), "--debug",
                     str(tmp_path / "dbg"))
    text = capsys.readouterr().out
    assert code == 1
    assert "ERROR [markers_missing]" in text
    assert (tmp_path / "dbg" / "001_blank.png.overlay.png").exists()
