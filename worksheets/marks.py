"""Machine-readable marks on every page: ArUco fiducials and the QR identity payload.

Shared by the renderer (which prints them) and the grader (which finds them), so the two can
never disagree about the dictionary, the marker ids or the payload format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

ARUCO_DICTIONARY_NAME = "DICT_4X4_50"
ARUCO_DICTIONARY = cv2.aruco.DICT_4X4_50
MARKER_CELLS = 6  # 4x4 data bits plus a one-cell black border on each side

QR_PREFIX = "PG1"
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Upper-case letters, digits and ':' keep the payload in QR alphanumeric mode: a smaller code
# that phones at an angle still read.
# The page part is "P<n>" on a student's sheet and "K<n>" on the answer key's copy of it.
_PAYLOAD_RE = re.compile(r"^PG1:([0-9A-F]{8}):V(\d{4,5}):([PK])(\d{1,2}):([0-9A-Z])$")


def aruco_dictionary() -> cv2.aruco.Dictionary:
    return cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARY)


def marker_bits(marker_id: int) -> np.ndarray:
    """The marker as a (6, 6) bool array, True = black, border included, row 0 at the top."""
    image = cv2.aruco.generateImageMarker(aruco_dictionary(), marker_id, MARKER_CELLS)
    return np.asarray(image < 128)


def check_character(body: str) -> str:
    """A weighted mod-36 check character over ``body`` (catches a misread or swapped char)."""
    total = 0
    for position, char in enumerate(body, start=1):
        total += position * (_BASE36.find(char) + 1 if char in _BASE36 else ord(char))
    return _BASE36[total % 36]


@dataclass(frozen=True)
class PageIdentity:
    """What a page's QR says: which worksheet, which variant (student or copy) and page, and
    whether it is that page of the answer key (printed with the answers, never graded)."""

    worksheet_id: str
    variant: int
    page_number: int
    answer_key: bool = False

    def payload(self) -> str:
        kind = "K" if self.answer_key else "P"
        body = f"{QR_PREFIX}:{self.worksheet_id}:V{self.variant:04d}:{kind}{self.page_number}"
        return f"{body}:{check_character(body)}"

    def of_answer_key(self) -> PageIdentity:
        """The same page as the answer key prints it."""
        return PageIdentity(self.worksheet_id, self.variant, self.page_number, answer_key=True)


def parse_payload(text: str) -> PageIdentity | None:
    """The identity in a QR payload, or None if it is not ours or its check character fails."""
    match = _PAYLOAD_RE.match(text.strip())
    if match is None:
        return None
    body = text.strip()[:-2]
    if check_character(body) != match.group(5):
        return None
    return PageIdentity(match.group(1), int(match.group(2)), int(match.group(4)),
                        answer_key=match.group(3) == "K")
