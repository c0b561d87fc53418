"""Turn whatever a teacher uploads into page images, one page at a time.

Accepted: JPEG, PNG, TIFF (multi-page too), HEIC/HEIF, BMP and WebP images, PDF files (every
page rasterised with poppler's ``pdftoppm``), zip files of any of these (nested folders and
nested zips too) and directories (walked recursively in natural order: ``IMG_2`` before
``IMG_10``). The format is detected from the content (magic bytes), never from the name alone.

Every item of :func:`iter_pages` is either a :class:`PageInput` (one decoded page) or an
:class:`InputFailure` (a file, member or page that cannot be used, with a
:class:`~grader.errors.PageError` telling the teacher what to do). A bad file never stops the
batch. Pages are decoded lazily, so a 200-page PDF holds one page in memory at a time.

Images come out as ``np.ndarray`` of shape (H, W, 3), dtype uint8, BGR channel order (OpenCV's),
already turned upright according to their EXIF orientation tag; pixel x grows right, y down.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps

from grader.errors import PageError, UnreadableFile, UnsupportedFormat

pillow_heif.register_heif_opener()

DEFAULT_PDF_DPI = 200
SUPPORTED_HINT = "upload JPEG, PNG, TIFF, HEIC, PDF or a zip of these"
POPPLER_HINT = "install poppler-utils: apt-get install poppler-utils"
# A single page should render in well under a second; a minute means a pathological file.
PDF_PAGE_TIMEOUT_S = 120
# Refuse zip members that would not fit comfortably in memory (also stops zip bombs early).
MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_ZIP_DEPTH = 3
# Files that operating systems drop into folders and archives; never a teacher's upload.
OS_JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})

_EXTENSION_KIND = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".heic": "HEIC",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".bmp": "BMP",
    ".webp": "WebP",
    ".pdf": "PDF",
    ".zip": "zip",
}
_ZIP_DOCUMENT_SUFFIXES = frozenset(
    {".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".epub", ".jar", ".apk", ".pages"}
)
_DOCUMENT_MARKERS = frozenset({"[Content_Types].xml", "mimetype"})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)


@dataclass(frozen=True, eq=False)
class PageInput:
    """One decoded page.

    ``image``: (H, W, 3) uint8 BGR, upright after EXIF orientation. ``source``: human-readable
    origin, e.g. ``"scans/batch.pdf page 3"`` or ``"class.zip:IMG_0412.HEIC"``. ``path``: the
    file on disk (the zip itself for members). ``member``: the name inside the zip, if any.
    ``page_index``: 0-based page within the file or member. ``file_sha256``: hex digest of the
    original bytes of the file or member. ``sha256``: digest of ``file_sha256`` and
    ``page_index``, equal for the same page uploaded twice, whatever the file is called.
    """

    source: str
    path: Path
    page_index: int
    image: np.ndarray
    sha256: str
    file_sha256: str
    member: str | None = None


@dataclass(frozen=True, eq=False)
class InputFailure:
    """A file, zip member or page that cannot be used; ``error.code`` becomes its status."""

    source: str
    error: PageError
    path: Path | None = None
    page_index: int | None = None


PageItem = PageInput | InputFailure


def iter_pages(paths: Iterable[Path | str], pdf_dpi: int = DEFAULT_PDF_DPI) -> Iterator[PageItem]:
    """Yield every page of every file, zip member and directory entry under ``paths``, in order.

    Directories are walked recursively in natural order; dotfiles and OS junk are skipped, other
    non-image files are reported as failures. PDFs are rasterised at ``pdf_dpi``.
    """
    for item in iter_input_files(paths):
        if isinstance(item, InputFailure):
            yield item
        else:
            yield from _iter_path(item, pdf_dpi)


def iter_input_files(
    paths: Iterable[Path | str], skip_dirs: Iterable[Path] = ()
) -> Iterator[Path | InputFailure]:
    """The files behind ``paths``, in the order :func:`iter_pages` reads them.

    Folders are walked recursively in natural order, skipping dotfiles and OS junk, and the
    folders in ``skip_dirs`` (the results folder, when it lies inside an input folder: its
    crops, aligned pages and kept uploads are not new photos); a folder that cannot be read
    is a failure.  Paths given directly come back as they are, so that decoding reports a
    missing one.  Lets a caller share one batch's files among processes.
    """
    skip = frozenset(Path(d).resolve() for d in skip_dirs)
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk_directory(path, skip=skip)
        else:
            yield path


def folders_inside(folder: Path, paths: Iterable[Path | str]) -> list[Path]:
    """The input folders among ``paths`` that ``folder`` lies inside (or is)."""
    inner = folder.resolve()
    return [Path(p) for p in paths
            if Path(p).is_dir() and inner.is_relative_to(Path(p).resolve())]


def _iter_path(path: Path, pdf_dpi: int) -> Iterator[PageItem]:
    if path.is_file():
        yield from _iter_file(path, pdf_dpi)
    elif not path.exists():
        yield _fail(
            str(path), UnreadableFile(f"{path}: no such file or folder; check the path"), path
        )
    else:
        yield _fail(
            str(path), UnsupportedFormat(f"{path}: not a regular file; {SUPPORTED_HINT}"), path
        )


def iter_upload(data: bytes, name: str, pdf_dpi: int = DEFAULT_PDF_DPI) -> Iterator[PageItem]:
    """Like :func:`iter_pages` for one upload held in memory (``name`` is its file name)."""
    yield from _iter_blob(data, name, Path(name), None, pdf_dpi, depth=0)


def decode_image_bytes(data: bytes, name: str) -> np.ndarray:
    """Decode the first page of an image file held in memory.

    Returns (H, W, 3) uint8 BGR, upright after EXIF orientation. Raises :class:`UnreadableFile`
    or :class:`UnsupportedFormat` (message names ``name``); PDFs and zips go through
    :func:`iter_upload` instead.
    """
    kind = sniff_format(data)
    if kind in ("pdf", "zip"):
        raise UnsupportedFormat(f"{name}: is a {kind.upper()}, not a single image; use iter_upload")
    if kind is None:
        raise _unrecognised(name, data)
    with _open_image(data, name, kind) as img:
        return _to_bgr(img, name, kind)


def sniff_format(data: bytes) -> str | None:
    """Name the format from the first bytes: jpeg, png, tiff, heif, bmp, webp, pdf, zip or None."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heif"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    # PDF writers may put junk before the header; readers accept it within the first kilobyte.
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    return None


def page_sha256(file_sha256: str, page_index: int) -> str:
    """Digest identifying page ``page_index`` of the file whose bytes hash to ``file_sha256``."""
    return hashlib.sha256(f"{file_sha256}:{page_index}".encode()).hexdigest()


def natural_key(name: str) -> tuple[str | int, ...]:
    """Sort key putting ``IMG_2`` before ``IMG_10`` (case-insensitive)."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


# --- files and folders -------------------------------------------------------------------


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in OS_JUNK_NAMES


def _walk_directory(
    folder: Path, seen: frozenset[Path] = frozenset(), skip: frozenset[Path] = frozenset()
) -> Iterator[Path | InputFailure]:
    """Files under ``folder`` in natural order of their path, subfolders interleaved by name."""
    real = folder.resolve()
    # A symlink back up the tree would never end; a skipped folder is the results folder.
    if real in seen or real in skip:
        return
    try:
        entries = sorted(
            (e for e in folder.iterdir() if not _is_junk(e.name)), key=lambda e: natural_key(e.name)
        )
    except OSError as exc:
        msg = f"{folder}: the folder cannot be read ({exc.strerror}); check its permissions"
        yield _fail(str(folder), UnreadableFile(msg), folder)
        return
    for entry in entries:
        if entry.is_dir():
            yield from _walk_directory(entry, seen | {real}, skip)
        elif entry.is_file():
            yield entry


def _iter_file(path: Path, pdf_dpi: int) -> Iterator[PageItem]:
    source = str(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        yield _fail(
            source, UnreadableFile(f"{source}: cannot be read ({exc.strerror}); check it"), path
        )
        return
    if sniff_format(head) == "pdf":
        # Stream the hash and hand the path to poppler, so a big PDF is never held in memory.
        try:
            digest = _file_sha256(path)
        except OSError as exc:
            yield _fail(source, UnreadableFile(f"{source}: cannot be read ({exc.strerror})"), path)
            return
        yield from _iter_pdf(path, source, path, None, digest, pdf_dpi)
        return
    if sniff_format(head) == "zip":
        # Read from the file: members are extracted one at a time, never the whole archive.
        yield from _iter_zip(path, source, path, pdf_dpi, depth=0)
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield _fail(
            source, UnreadableFile(f"{source}: cannot be read ({exc.strerror}); check it"), path
        )
        return
    yield from _iter_blob(data, source, path, None, pdf_dpi, depth=0)


def _iter_blob(
    data: bytes, source: str, path: Path, member: str | None, pdf_dpi: int, depth: int
) -> Iterator[PageItem]:
    """Dispatch bytes of one file or zip member on their detected format."""
    kind = sniff_format(data)
    digest = hashlib.sha256(data).hexdigest()
    if kind is None:
        yield _fail(source, _unrecognised(source, data), path)
    elif kind == "zip":
        yield from _iter_zip(data, source, path, pdf_dpi, depth)
    elif kind == "pdf":
        with tempfile.TemporaryDirectory(prefix="papergrade-pdf-") as tmp:
            pdf_path = Path(tmp) / "upload.pdf"
            pdf_path.write_bytes(data)
            yield from _iter_pdf(pdf_path, source, path, member, digest, pdf_dpi)
    else:
        yield from _iter_image(data, kind, source, path, member, digest)


def _iter_zip(
    archive_file: Path | bytes, source: str, path: Path, pdf_dpi: int, depth: int
) -> Iterator[PageItem]:
    """Pages of every member of a zip (a file on disk, or the bytes of a nested zip)."""
    if depth >= MAX_ZIP_DEPTH:
        yield _fail(
            source, UnsupportedFormat(f"{source}: zips nested too deep; unpack them first"), path
        )
        return
    try:
        opened = io.BytesIO(archive_file) if isinstance(archive_file, bytes) else archive_file
        archive = zipfile.ZipFile(opened)
    except (zipfile.BadZipFile, OSError) as exc:
        msg = f"{source}: the zip file is damaged ({exc}); create it again and upload it"
        yield _fail(source, UnreadableFile(msg), path)
        return
    with archive:
        names = set(archive.namelist())
        if _DOCUMENT_MARKERS & names or Path(source).suffix.lower() in _ZIP_DOCUMENT_SUFFIXES:
            # Word, Excel, OpenDocument and EPUB files are zips inside; name the file, not
            # its dozens of XML parts.
            msg = f"{source}: not an image or PDF; {SUPPORTED_HINT}"
            yield _fail(source, UnsupportedFormat(msg), path)
            return
        members = [m for m in archive.infolist() if not m.is_dir() and not _zip_junk(m.filename)]
        for info in sorted(members, key=lambda m: natural_key(m.filename)):
            member_source = f"{source}:{info.filename}"
            try:
                member_data = _read_member(archive, info, member_source)
            except PageError as err:
                yield _fail(member_source, err, path)
                continue
            yield from _iter_blob(
                member_data, member_source, path, info.filename, pdf_dpi, depth + 1
            )


def _zip_junk(name: str) -> bool:
    """True for macOS resource forks, dotfiles and OS junk anywhere in a member's path."""
    return any(_is_junk(part) for part in name.split("/") if part)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    if info.flag_bits & 0x1:
        raise UnreadableFile(f"{source}: the zip is password-protected; zip the files without one")
    if info.file_size > MAX_MEMBER_BYTES:
        raise UnreadableFile(f"{source}: too large ({info.file_size} bytes); upload it separately")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        # A CRC mismatch is BadZipFile, a broken stream zlib.error, an unknown method
        # (e.g. deflate64) NotImplementedError: all a damaged member, not a crashed batch.
        raise UnreadableFile(
            f"{source}: cannot be extracted ({exc}); create the zip again"
        ) from exc


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unrecognised(source: str, data: bytes) -> PageError:
    """The right error for bytes whose format is unknown: damaged if the name promised a format."""
    if not data:
        return UnreadableFile(f"{source}: the file is empty; upload it again")
    kind = _EXTENSION_KIND.get(Path(source.rsplit(":", 1)[-1]).suffix.lower())
    if kind is not None:
        return UnreadableFile(
            f"{source}: named like a {kind} file but its content is not a readable {kind}; "
            "it may be damaged or incomplete, upload it again"
        )
    return UnsupportedFormat(f"{source}: not an image or PDF; {SUPPORTED_HINT}")


def _fail(
    source: str, error: PageError, path: Path | None, page: int | None = None
) -> InputFailure:
    return InputFailure(source=source, error=error, path=path, page_index=page)


# --- images ------------------------------------------------------------------------------


def _open_image(data: bytes, source: str, kind: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Image.DecompressionBombError as exc:
        msg = f"{source}: the image is far too large to be a photo of a page; resize it ({exc})"
        raise UnreadableFile(msg) from exc
    except Exception as exc:  # decoders raise many types; a damaged file is a per-file result
        raise _damaged(source, kind, exc) from exc
    return img


def _damaged(source: str, kind: str, exc: Exception) -> UnreadableFile:
    return UnreadableFile(
        f"{source}: the {kind.upper()} image is damaged or incomplete ({exc}); "
        "upload the original photo or scan again"
    )


def _iter_image(
    data: bytes, kind: str, source: str, path: Path, member: str | None, digest: str
) -> Iterator[PageItem]:
    try:
        img = _open_image(data, source, kind)
    except PageError as err:
        yield _fail(source, err, path)
        return
    with img:
        # Only TIFF carries pages; other multi-frame images (animated WebP, HEIF bursts) give
        # their first or primary image.
        n_pages = getattr(img, "n_frames", 1) if kind == "tiff" else 1
        for index in range(n_pages):
            page_source = source if n_pages == 1 else f"{source} page {index + 1}"
            try:
                if index:
                    img.seek(index)
                image = _to_bgr(img, page_source, kind)
            except PageError as err:
                yield _fail(page_source, err, path, index)
                return
            except Exception as exc:  # a broken later page of a TIFF
                yield _fail(page_source, _damaged(page_source, kind, exc), path, index)
                return
            yield PageInput(
                source=page_source,
                path=path,
                page_index=index,
                image=image,
                sha256=page_sha256(digest, index),
                file_sha256=digest,
                member=member,
            )


def _to_bgr(img: Image.Image, source: str, kind: str) -> np.ndarray:
    """Current frame of ``img`` as upright (H, W, 3) uint8 BGR."""
    try:
        upright = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block must not cost the page: keep it as stored
        upright = img.copy()
    try:
        return _pixels_to_bgr(upright)
    except Exception as exc:
        raise _damaged(source, kind, exc) from exc


def _pixels_to_bgr(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float scans: scale to 8 bits instead of clipping everything to white.
        arr = np.asarray(img, dtype=np.float32)
        peak = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / 65535.0 if peak > 255.0 else (255.0 if 0.0 < peak <= 1.0 else 1.0)
        gray = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        # Transparent areas of a screenshot or export are paper, i.e. white.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode == "L":
        return cv2.cvtColor(np.asarray(img), cv2.COLOR_GRAY2BGR)
    elif mode != "RGB":
        img = img.convert("RGB")
    return cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)


# --- PDF ---------------------------------------------------------------------------------


def _iter_pdf(
    pdf_path: Path, source: str, path: Path, member: str | None, digest: str, dpi: int
) -> Iterator[PageItem]:
    try:
        pdfinfo, pdftoppm = _poppler_tools(source)
        n_pages = _pdf_page_count(pdfinfo, pdf_path, source)
    except PageError as err:
        yield _fail(source, err, path)
        return
    for index in range(n_pages):
        page_source = f"{source} page {index + 1}"
        try:
            image = _render_pdf_page(pdftoppm, pdf_path, index, dpi, page_source)
        except PageError as err:
            yield _fail(page_source, err, path, index)
            continue
        yield PageInput(
            source=page_source,
            path=path,
            page_index=index,
            image=image,
            sha256=page_sha256(digest, index),
            file_sha256=digest,
            member=member,
        )


def _poppler_tools(source: str) -> tuple[str, str]:
    pdfinfo, pdftoppm = shutil.which("pdfinfo"), shutil.which("pdftoppm")
    if pdfinfo is None or pdftoppm is None:
        raise UnreadableFile(f"{source}: PDF pages cannot be read without poppler; {POPPLER_HINT}")
    return pdfinfo, pdftoppm


def _run_poppler(args: list[str], source: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, capture_output=True, timeout=PDF_PAGE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        msg = f"{source}: the PDF took too long to open; export or scan it again"
        raise UnreadableFile(msg) from exc
    except OSError as exc:
        raise UnreadableFile(
            f"{source}: poppler could not be started ({exc}); {POPPLER_HINT}"
        ) from exc


def _pdf_error(source: str, stderr: bytes) -> UnreadableFile:
    text = stderr.decode("utf-8", "replace")
    if "password" in text.lower():
        return UnreadableFile(
            f"{source}: the PDF is password-protected; save or print it again without a "
            "password and upload that"
        )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = f" ({lines[-1]})" if lines else ""
    return UnreadableFile(
        f"{source}: the PDF is damaged and cannot be opened{detail}; export or scan it again"
    )


def _pdf_page_count(pdfinfo: str, pdf_path: Path, source: str) -> int:
    proc = _run_poppler([pdfinfo, os.fspath(pdf_path.absolute())], source)
    if proc.returncode != 0:
        raise _pdf_error(source, proc.stderr)
    match = re.search(rb"^Pages:\s+(\d+)", proc.stdout, re.MULTILINE)
    if match is None or int(match.group(1)) == 0:
        raise UnreadableFile(f"{source}: the PDF has no pages; export or scan it again")
    return int(match.group(1))


def _render_pdf_page(
    pdftoppm: str, pdf_path: Path, index: int, dpi: int, source: str
) -> np.ndarray:
    """Rasterise one page (0-based ``index``) at ``dpi`` to (H, W, 3) uint8 BGR."""
    page = str(index + 1)
    args = [pdftoppm, "-r", str(dpi), "-f", page, "-l", page, os.fspath(pdf_path.absolute())]
    # Without an output root pdftoppm writes one binary PPM to stdout: no temp files, no PNG.
    proc = _run_poppler(args, source)
    if proc.returncode != 0 or not proc.stdout:
        raise _pdf_error(source, proc.stderr)
    image = cv2.imdecode(np.frombuffer(proc.stdout, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableFile(f"{source}: poppler produced no image for this page; scan it again")
    return image
