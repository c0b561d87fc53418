"""Who wrote a page: the roster student printed on it, or a handwritten student number.

A handwritten number is matched to the roster only when exactly one student fits; anything
less certain is sent to review (``needs_review``), never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grader.results import StudentRef
from grader.score import ReadingLike


@dataclass(frozen=True)
class IdentityMatch:
    student: StudentRef | None
    number_read: str | None
    needs_review: bool
    reason: str = ""


def read_student_number(digits: Sequence[ReadingLike]) -> tuple[str | None, bool]:
    """The digits written in the student-number boxes, and whether any was unsure.

    Blank boxes are allowed at the end (shorter numbers); a blank in the middle, a box holding
    more than one character, or a non-digit makes the number unusable.  A box is read as
    :func:`written_digit` says.
    """
    text = ""
    unsure = False
    ended = False
    for reading in digits:
        unsure = unsure or reading.needs_review
        written = written_digit(reading)
        if written is None:
            ended = True
            continue
        if ended or len(written) != 1 or not written.isdigit():
            return None, True
        text += written
    return (text or None), unsure


def written_digit(reading: ReadingLike) -> str | None:
    """What a box holds: its reading's text, or for a doubted blank whose first alternative
    is a digit, that digit (the second look that doubted it found it: a "1" too faint or too
    thin to be read on its own).  Still doubted, it can only match where no other roster
    number agrees with the digits read surely (see :func:`only_fit`)."""
    if reading.text is not None or not reading.needs_review or not reading.alternatives:
        return reading.text
    lead = reading.alternatives[0][0]
    return lead if lead is not None and len(lead) == 1 and lead.isdigit() else None


def one_edit_apart(a: str, b: str) -> bool:
    """True if one substitution, insertion or deletion turns ``a`` into ``b``."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def only_fit(number: str, digits: Sequence[ReadingLike], roster: Sequence[StudentRef]) -> bool:
    """Whether ``number`` is the one roster number of its length that agrees with every digit
    read surely, its doubted digits all written ones (a doubted blank could hide a longer
    number).

    Then a doubted digit cannot make it another student's: a roster number that differs only
    there would agree with the sure digits too, and one that differs in a sure digit as well
    needs a confident misread on top, and is caught by the one-edit check when that is all it
    differs in.  A student missing from the roster would have to differ from a roster number
    only where the digits were doubted.
    """
    if any(d.needs_review and written_digit(d) is None for d in digits):
        return False
    sure = [i for i, d in enumerate(digits[: len(number)]) if not d.needs_review]
    fits = [s for s in roster if len(s.student_id) == len(number)
            and all(s.student_id[i] == number[i] for i in sure)]
    return len(fits) == 1


def match_student(digits: Sequence[ReadingLike], roster: Sequence[StudentRef]) -> IdentityMatch:
    number, unsure = read_student_number(digits)
    if number is None:
        return IdentityMatch(None, None, True, "student number missing or unreadable")
    exact = [s for s in roster if s.student_id == number]
    near = [s for s in roster if one_edit_apart(s.student_id, number)]
    if not roster:
        return IdentityMatch(None, number, True, "no roster given to match the student number")
    if len(exact) == 1 and not near and (not unsure or only_fit(number, digits, roster)):
        return IdentityMatch(exact[0], number, False)
    if len(exact) == 1:
        why = "a digit was hard to read" if unsure else "another student's number is one digit off"
        return IdentityMatch(exact[0], number, True, f"student number {number}: {why}")
    if len(near) == 1:
        return IdentityMatch(near[0], number, True,
                             f"student number {number} is not on the roster; closest is "
                             f"{near[0].student_id}")
    return IdentityMatch(None, number, True, f"student number {number} matches no one student")
