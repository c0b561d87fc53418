"""Input decoding: every accepted format, EXIF orientation, and per-item failures."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from grader import io as gio
from grader.errors import UnreadableFile, UnsupportedFormat
from grader.io import (
    InputFailure,
    PageInput,
    decode_image_bytes,
    folders_inside,
    iter_input_files,
    iter_pages,
    iter_upload,
)

# Quadrant colours (RGB) of the test pattern: TL red, TR green, BL blue, BR yellow.
RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 20)


def pattern(width: int = 80, height: int = 60) -> np.ndarray:
    """(H, W, 3) uint8 RGB image with four flat quadrants, so any rotation or flip shows."""
    rgb = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    rgb[:h2, :w2], rgb[:h2, w2:] = RED, GREEN
    rgb[h2:, :w2], rgb[h2:, w2:] = BLUE, YELLOW
    return rgb


def assert_pattern(bgr: np.ndarray, width: int = 80, height: int = 60, tol: int = 40) -> None:
    """Check ``bgr`` (H, W, 3) shows :func:`pattern` upright, sampling each quadrant's centre."""
    assert bgr.shape == (height, width, 3)
    assert bgr.dtype == np.uint8
    for (fy, fx), rgb in {
        (0.25, 0.25): RED,
        (0.25, 0.75): GREEN,
        (0.75, 0.25): BLUE,
        (0.75, 0.75): YELLOW,
    }.items():
        got = bgr[int(fy * height), int(fx * width)][::-1].astype(int)
        assert np.abs(got - np.array(rgb)).max() <= tol, (fy, fx, got, rgb)


def save(rgb: np.ndarray, path: Path, **kwargs: Any) -> Path:
    Image.fromarray(rgb).save(path, **kwargs)
    return path


def make_pdf(path: Path, pages: int = 2) -> Path:
    """A4 PDF; page i has a black square 100 pt wide whose top-left is (100 + 50 i, 100) pt."""
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for i in range(pages):
        pdf.setFillColorRGB(0, 0, 0)
        # reportlab's origin is bottom-left; the square's top edge is 100 pt below the top.
        pdf.rect(100 + 50 * i, A4[1] - 200, 100, 100, stroke=0, fill=1)
        pdf.showPage()
    pdf.save()
    return path


def pages_of(items: list[PageInput | InputFailure]) -> list[PageInput]:
    return [it for it in items if isinstance(it, PageInput)]


def failures_of(items: list[PageInput | InputFailure]) -> list[InputFailure]:
    return [it for it in items if isinstance(it, InputFailure)]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("p.jpg", {"quality": 95}),
        ("p.png", {}),
        ("p.bmp", {}),
        ("p.webp", {"lossless": True}),
        ("p.tif", {}),
        ("p.heic", {"quality": 90}),
    ],
)
def test_single_image_formats_decode_upright(tmp_path: Path, name: str, kwargs: dict) -> None:
    path = save(pattern(), tmp_path / name, **kwargs)
    items = list(iter_pages([path]))
    assert len(items) == 1 and isinstance(items[0], PageInput)
    page = items[0]
    assert page.source == str(path) and page.page_index == 0 and page.path == path
    assert_pattern(page.image)


def test_format_detected_by_content_not_name(tmp_path: Path) -> None:
    path = save(pattern(), tmp_path / "really_a_png.jpg", format="PNG")
    (page,) = pages_of(list(iter_pages([path])))
    assert_pattern(page.image, tol=0)


def test_multipage_tiff_gives_every_page(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 30), c) for c in (RED, GREEN, BLUE)]
    path = tmp_path / "scan.tiff"
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    pages = pages_of(list(iter_pages([path])))
    assert [p.source for p in pages] == [f"{path} page {i}" for i in (1, 2, 3)]
    assert [p.page_index for p in pages] == [0, 1, 2]
    for page, rgb in zip(pages, (RED, GREEN, BLUE), strict=True):
        assert tuple(page.image[15, 20][::-1]) == rgb
    assert len({p.sha256 for p in pages}) == 3


def test_pdf_pages_rasterised_at_requested_dpi(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "batch.pdf")
    pages = pages_of(list(iter_pages([path], pdf_dpi=72)))
    assert [p.source for p in pages] == [f"{path} page 1", f"{path} page 2"]
    for i, page in enumerate(pages):
        # A4 at 72 dpi is 595.3 x 841.9 px; poppler rounds up.
        assert page.image.shape[0] == 842 and page.image.shape[1] in (595, 596)
        x0 = 100 + 50 * i
        assert page.image[150, x0 + 50].max() < 30  # inside the square
        assert page.image[150, x0 - 10].min() > 225  # just left of it
    (big,) = pages_of(list(iter_pages([path], pdf_dpi=144)))[:1]
    assert big.image.shape[0] == 1684 and big.image.shape[1] in (1190, 1191)


def test_pdf_is_rendered_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_pdf(tmp_path / "many.pdf", pages=5)
    calls: list[int] = []
    real = gio._render_pdf_page

    def spy(pdftoppm: str, pdf_path: Path, index: int, dpi: int, source: str) -> np.ndarray:
        calls.append(index)
        return real(pdftoppm, pdf_path, index, dpi, source)

    monkeypatch.setattr(gio, "_render_pdf_page", spy)
    pages = iter_pages([path], pdf_dpi=36)
    first = next(pages)
    assert isinstance(first, PageInput) and calls == [0]
    next(pages)
    assert calls == [0, 1]


@pytest.mark.parametrize(
    ("orientation", "stored_from_display"),
    [
        (1, lambda a: a),
        (3, lambda a: np.rot90(a, 2)),
        # Tag 6 means "rotate 90° clockwise to display": stored pixels are turned anticlockwise.
        (6, lambda a: np.rot90(a, 1)),
        (8, lambda a: np.rot90(a, -1)),
    ],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, stored_from_display) -> None:
    stored = np.ascontiguousarray(stored_from_display(pattern()))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(stored, tmp_path / f"o{orientation}.jpg", quality=95, exif=exif.tobytes())
    with Image.open(path) as raw:  # the file really holds the turned pixels
        assert raw.size == (stored.shape[1], stored.shape[0])
    (page,) = pages_of(list(iter_pages([path])))
    assert_pattern(page.image)


def test_heic_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = np.ascontiguousarray(np.rot90(pattern(), 1))
    path = save(stored, tmp_path / "IMG_0001.HEIC", quality=90, exif=exif.tobytes())
    (page,) = pages_of(list(iter_pages([path])))
    assert_pattern(page.image)


def test_transparent_and_16bit_images(tmp_path: Path) -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, :10] = (0, 0, 0, 255)  # left half opaque black, right half fully transparent
    transparent = save(rgba, tmp_path / "t.png")
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((10, 10), 40000, np.uint16)).save(deep)
    items = pages_of(list(iter_pages([transparent, deep])))
    assert items[0].image[10, 5].max() == 0 and items[0].image[10, 15].min() == 255
    assert abs(int(items[1].image[5, 5, 0]) - round(40000 * 255 / 65535)) <= 1


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def encoded(rgb: np.ndarray, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_zip_with_nested_folders_junk_and_pdf(tmp_path: Path) -> None:
    png = encoded(pattern(), "PNG")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as nested:
        nested.writestr("deep.png", png)
    pdf = make_pdf(tmp_path / "doc.pdf", pages=1).read_bytes()
    archive = make_zip(
        tmp_path / "class.zip",
        {
            "IMG_10.jpg": encoded(pattern(), "JPEG", quality=95),
            "IMG_2.png": png,
            "sub/folder/b.HEIC": encoded(pattern(), "HEIF", quality=90),
            "sub/scan.pdf": pdf,
            "more.zip": inner.getvalue(),
            "__MACOSX/._IMG_2.png": b"\x00\x05\x16\x07 resource fork",
            ".DS_Store": b"junk",
            "sub/.hidden.png": png,
            "notes.txt": b"homework for Tuesday",
            "broken.pdf": b"%PDF-1.4\n1 0 obj garbage\n",
        },
    )
    items = list(iter_pages([archive], pdf_dpi=36))
    sources = [it.source for it in items]
    assert sources == [
        f"{archive}:broken.pdf",
        f"{archive}:IMG_2.png",
        f"{archive}:IMG_10.jpg",
        f"{archive}:more.zip:deep.png",
        f"{archive}:notes.txt",
        f"{archive}:sub/folder/b.HEIC",
        f"{archive}:sub/scan.pdf page 1",
    ]
    broken, junk = failures_of(items)
    assert isinstance(broken.error, UnreadableFile) and "broken.pdf" in str(broken.error)
    assert isinstance(junk.error, UnsupportedFormat)
    assert "notes.txt" in str(junk.error) and "upload JPEG, PNG" in str(junk.error)
    pages = pages_of(items)
    for page in pages[:3]:
        assert_pattern(page.image)
        assert page.path == archive
    assert pages[0].member == "IMG_2.png"
    assert pages[0].file_sha256 == hashlib.sha256(png).hexdigest()


def test_upload_in_memory_and_office_documents(tmp_path: Path) -> None:
    data = make_zip(tmp_path / "u.zip", {"a.png": encoded(pattern(), "PNG")}).read_bytes()
    (page,) = list(iter_upload(data, "upload.zip"))
    assert isinstance(page, PageInput) and page.source == "upload.zip:a.png"
    docx = make_zip(tmp_path / "x.docx", {"[Content_Types].xml": b"<Types/>", "word/d.xml": b""})
    (fail,) = list(iter_pages([docx]))
    assert isinstance(fail, InputFailure) and isinstance(fail.error, UnsupportedFormat)
    assert str(fail.error) == f"{docx}: not an image or PDF; {gio.SUPPORTED_HINT}"


def test_directory_walk_is_recursive_sorted_and_reports_strays(tmp_path: Path) -> None:
    root = tmp_path / "scans"
    (root / "b_period" / "deeper").mkdir(parents=True)
    (root / ".git").mkdir()
    png = encoded(pattern(), "PNG")
    for rel in ("IMG_10.png", "IMG_2.png", "b_period/deeper/z.png", "a.png", ".git/x.png"):
        (root / rel).write_bytes(png)
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "Thumbs.db").write_bytes(b"junk")
    (root / "b_period" / "essay.docx").write_bytes(b"plain words, not a document at all")
    items = list(iter_pages([root]))
    assert [Path(it.source).relative_to(root).as_posix() for it in items] == [
        "a.png",
        "b_period/deeper/z.png",
        "b_period/essay.docx",
        "IMG_2.png",
        "IMG_10.png",
    ]
    (fail,) = failures_of(items)
    assert isinstance(fail.error, UnsupportedFormat) and "essay.docx" in str(fail.error)


def test_bad_files_fail_alone_and_the_batch_goes_on(tmp_path: Path) -> None:
    good = save(pattern(), tmp_path / "good.png")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    jpeg = encoded(pattern(400, 300), "JPEG", quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg[: len(jpeg) // 2])
    named_wrong = tmp_path / "photo.heic"
    named_wrong.write_bytes(b"definitely not an image" * 10)
    broken_pdf = tmp_path / "broken.pdf"
    broken_pdf.write_bytes(b"%PDF-1.4\n1 0 obj garbage\n")
    locked_pdf = tmp_path / "locked.pdf"
    locked = canvas.Canvas(str(locked_pdf), encrypt="secret")
    locked.drawString(100, 100, "x")
    locked.save()
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    missing = tmp_path / "nope.png"
    batch = [empty, truncated, named_wrong, broken_pdf, locked_pdf, bad_zip, missing, good]
    items = list(iter_pages(batch))
    assert len(items) == len(batch)
    assert isinstance(items[-1], PageInput)
    fails = failures_of(items)
    assert [f.source for f in fails] == [str(p) for p in batch[:-1]]
    for path, fail in zip(batch[:-1], fails, strict=True):
        assert isinstance(fail.error, UnreadableFile), (path, fail.error)
        assert str(path) in str(fail.error)
    assert "empty" in str(fails[0].error)
    assert "password" in str(fails[4].error)


def test_missing_poppler_is_a_failure_with_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdf = make_pdf(tmp_path / "a.pdf", pages=1)
    good = save(pattern(), tmp_path / "b.png")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    fail, page = list(iter_pages([pdf, good]))
    assert isinstance(fail, InputFailure) and gio.POPPLER_HINT in str(fail.error)
    assert isinstance(page, PageInput)


def test_sha256_is_stable_and_name_independent(tmp_path: Path) -> None:
    a = save(pattern(), tmp_path / "a.png")
    b = tmp_path / "copy of a.png"
    b.write_bytes(a.read_bytes())
    pdf = make_pdf(tmp_path / "two.pdf")
    first = pages_of(list(iter_pages([a, b, pdf], pdf_dpi=36)))
    second = pages_of(list(iter_pages([a, b, pdf], pdf_dpi=36)))
    assert [p.sha256 for p in first] == [p.sha256 for p in second]
    assert first[0].sha256 == first[1].sha256
    assert first[0].file_sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    assert first[2].file_sha256 == first[3].file_sha256
    assert first[2].sha256 != first[3].sha256


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(UnreadableFile, match="too large"):
        decode_image_bytes(encoded(pattern(), "PNG"), "huge.png")


def test_decode_image_bytes() -> None:
    assert_pattern(decode_image_bytes(encoded(pattern(), "PNG"), "a.png"), tol=0)
    with pytest.raises(UnreadableFile, match="empty"):
        decode_image_bytes(b"", "a.png")
    with pytest.raises(UnsupportedFormat, match=r"x\.txt"):
        decode_image_bytes(b"hello", "x.txt")
    with pytest.raises(UnreadableFile, match="damaged"):
        decode_image_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "a.png")


def test_the_results_folder_inside_an_input_folder_is_not_an_upload(tmp_path: Path) -> None:
    """Grading photos/ into photos/results/ twice must not grade the crops and kept uploads."""
    photos = tmp_path / "photos"
    (photos / "results" / "crops").mkdir(parents=True)
    (photos / "IMG_1.jpg").write_bytes(b"photo")
    (photos / "results" / "crops" / "q1.a.png").write_bytes(b"crop")
    (photos / "results" / "uploads").mkdir()
    walked = list(iter_input_files([photos], skip_dirs=[photos / "results"]))
    assert walked == [photos / "IMG_1.jpg"]
    assert len(list(iter_input_files([photos]))) == 2
    assert folders_inside(photos / "results", [photos, tmp_path / "other"]) == [photos]
    assert folders_inside(tmp_path / "elsewhere", [photos]) == []
