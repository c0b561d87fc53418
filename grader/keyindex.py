"""The answer key indexed for the page pipeline: one entry per printed page.

A photo tells us its page by the QR payload (worksheet id, variant, page number); this module
turns a loaded key.json into a lookup from that identity to the page's geometry.  All geometry
is in millimetres from the page's top-left corner (x right, y down), as in key.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.locate import encode_modules
from worksheets.errors import KeyFileError
from worksheets.key import load_key
from worksheets.layout import marker_rects, qr_rect
from worksheets.marks import PageIdentity, parse_payload

Rect = tuple[float, float, float, float]  # x, y, w, h in mm from the page's top-left corner


@dataclass(frozen=True)
class BoxSpec:
    """One printed box to crop: an answer field or a student-number digit."""

    box_id: str
    rect: Rect

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.rect
        return x + w / 2, y + h / 2


@dataclass(frozen=True)
class KeyPage:
    """Geometry and identity of one printed page; ``entry`` is its raw key.json object."""

    identity: PageIdentity
    pdf_page: int
    size_mm: tuple[float, float]
    qr_rect: Rect
    markers: dict[int, Rect]
    fields: tuple[BoxSpec, ...]
    student_number_boxes: tuple[BoxSpec, ...]
    entry: dict[str, Any]

    @property
    def all_boxes(self) -> tuple[BoxSpec, ...]:
        return self.fields + self.student_number_boxes


@dataclass(frozen=True)
class PageGeometry:
    """What is the same on every page of a paper size: markers and the QR's place."""

    size_mm: tuple[float, float]
    markers: dict[int, Rect]
    qr_rect: Rect


def _rect(value: Any, where: str) -> Rect:
    if not (isinstance(value, list) and len(value) == 4):
        raise KeyFileError(f"key.json: {where} needs bbox_mm = [x, y, w, h]; reprint the key")
    x, y, w, h = (float(v) for v in value)
    return x, y, w, h


def geometry_for(size_mm: tuple[float, float]) -> PageGeometry:
    """Marker and QR placement of ``worksheets.layout`` for a page of ``size_mm``."""
    width, height = size_mm
    markers = {i: (r.x, r.y, r.w, r.h) for i, r in enumerate(marker_rects(width, height))}
    q = qr_rect(width)
    return PageGeometry(size_mm, markers, (q.x, q.y, q.w, q.h))


def _page(key: dict[str, Any], entry: dict[str, Any]) -> KeyPage:
    where = f"page {entry.get('pdf_page')}"
    payload = str(entry.get("qr", {}).get("payload", ""))
    identity = parse_payload(payload)
    if identity is None or identity.worksheet_id != key.get("worksheet_id"):
        raise KeyFileError(f"key.json: {where} has a bad QR payload {payload!r}; reprint the key")
    size = entry.get("size_mm") or key["paper"]["size_mm"]
    return KeyPage(
        identity=identity,
        pdf_page=int(entry["pdf_page"]),
        size_mm=(float(size[0]), float(size[1])),
        qr_rect=_rect(entry["qr"]["bbox_mm"], f"{where} qr"),
        markers={int(m["id"]): _rect(m["bbox_mm"], f"{where} marker") for m in entry["markers"]},
        fields=tuple(BoxSpec(str(f["id"]), _rect(f["bbox_mm"], f"{where} field {f.get('id')}"))
                     for f in entry["fields"]),
        student_number_boxes=tuple(
            BoxSpec(str(b["id"]), _rect(b["bbox_mm"], f"{where} student number box"))
            for b in entry.get("student_number_boxes", [])
        ),
        entry=entry,
    )


class KeyIndex:
    """Pages of one or more keys, looked up by (worksheet_id, variant, page_number)."""

    def __init__(self, keys: Iterable[dict[str, Any]]) -> None:
        self.keys = list(keys)
        if not self.keys:
            raise KeyFileError("no answer key given; pass the key.json written by print")
        self.pages: dict[tuple[str, int, int], KeyPage] = {}
        for key in self.keys:
            try:
                pages = [_page(key, entry) for entry in key["pages"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise KeyFileError(
                    f"key.json of worksheet {key.get('worksheet_id')} is incomplete ({exc}); "
                    "use the key.json written by 'papergrade print'"
                ) from None
            for page in pages:
                ident = page.identity
                self.pages[(ident.worksheet_id, ident.variant, ident.page_number)] = page
        first = self.keys[0]
        size = first["paper"]["size_mm"]
        # Markers and QR sit at the same place on every page of one paper size, so a photo can
        # be located before its QR says which page it is.
        self.geometry = geometry_for((float(size[0]), float(size[1])))
        self._qr_modules: dict[str, np.ndarray] | None = None

    @classmethod
    def load(cls, *paths: Path) -> KeyIndex:
        return cls(load_key(Path(p)) for p in paths)

    @property
    def worksheet_ids(self) -> list[str]:
        return [str(k.get("worksheet_id")) for k in self.keys]

    def qr_modules(self) -> dict[str, np.ndarray]:
        """Every page's QR payload -> its (N, N) bool module matrix (built once, on demand).

        Lets a blurred QR that no decoder reads still be recognised among the pages of
        this key (see :func:`grader.locate.read_qr`).
        """
        if self._qr_modules is None:
            payloads = [p.entry["qr"]["payload"] for p in self.pages.values()]
            # The answer key's pages too: a blurred key page must be known as one, not taken
            # for the student's page whose code differs from it in a few modules.
            payloads += [p.identity.of_answer_key().payload() for p in self.pages.values()]
            self._qr_modules = {text: encode_modules(text) for text in payloads}
        return self._qr_modules

    def lookup(self, identity: PageIdentity) -> KeyPage | None:
        return self.pages.get((identity.worksheet_id, identity.variant, identity.page_number))

    def __len__(self) -> int:
        return len(self.pages)
