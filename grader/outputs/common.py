"""Helpers every output shares: atomic writes, number formatting, safe file names."""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

A4_MM: tuple[float, float] = (210.0, 297.0)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The temporary file lives in the same folder so that the final rename stays on one
    filesystem (``os.replace`` is atomic only there).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str, *, bom: bool = False) -> Path:
    encoding = "utf-8-sig" if bom else "utf-8"
    return atomic_write_bytes(path, text.encode(encoding))


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """RFC 4180 CSV: CRLF line ends, quotes only where needed, doubled inner quotes."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def fmt_points(value: float | None) -> str:
    """Points as a teacher writes them: ``4``, ``2.5``, ``0.33``; empty for no value."""
    if value is None:
        return ""
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt_percent(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}"


def safe_filename(name: str) -> str:
    """A student id turned into a file name that cannot leave its folder."""
    cleaned = _UNSAFE.sub("_", name).strip("._")
    return cleaned or "student"
