"""Matching a handwritten student number to the roster, and linking a copy's pages."""

from __future__ import annotations

from grader.grade import link_copies
from grader.identity import match_student, one_edit_apart, read_student_number
from grader.results import PageResult, StudentRef
from grader.score import TeacherReading

ROSTER = [StudentRef("240101", "Amina"), StudentRef("240102", "Bruno"),
          StudentRef("240777", "Chen")]


def digits(text: str, *unsure_at: int) -> list[TeacherReading]:
    boxes = [TeacherReading(c, "number", 0.99, (), i in unsure_at) for i, c in enumerate(text)]
    return boxes + [TeacherReading(None, "blank")] * (6 - len(text))


def test_exact_number_with_no_near_neighbour_is_certain() -> None:
    match = match_student(digits("240777"), ROSTER)
    assert match.student == ROSTER[2] and not match.needs_review


def test_number_one_digit_from_another_student_goes_to_review() -> None:
    match = match_student(digits("240101"), ROSTER)
    assert match.student == ROSTER[0] and match.needs_review
    assert "one digit off" in match.reason


def test_a_doubted_digit_goes_to_review_where_it_could_make_another_student() -> None:
    roster = [*ROSTER, StudentRef("240887", "Dana")]  # two digits from Chen's
    match = match_student(digits("240777", 3, 4), roster)
    assert match.student == ROSTER[2] and match.needs_review
    assert "hard to read" in match.reason
    # Only Chen agrees with every digit read surely: a doubt in one place changes nothing.
    sure = match_student(digits("240777", 3), roster)
    assert sure.student == ROSTER[2] and not sure.needs_review
    # A doubted blank could hide a longer number.
    short = [StudentRef("24077", "Eve"), StudentRef("2407771", "Femi")]
    doubted_end = digits("24077")
    doubted_end[5] = TeacherReading(None, "blank", 0.5, (), True)
    assert match_student(doubted_end, short).needs_review


def test_unknown_and_ambiguous_numbers_are_not_guessed() -> None:
    unknown = match_student(digits("999999"), ROSTER)
    assert unknown.student is None and unknown.needs_review
    ambiguous = match_student(digits("240100"), ROSTER)  # one edit from 240101 and 240102
    assert ambiguous.student is None and ambiguous.needs_review


def test_a_doubted_blank_is_the_digit_its_second_look_found() -> None:
    """A "1" too thin to read alone is doubted as a blank with "1" first among what else it
    could be: the number is still usable, as a doubted digit."""
    boxes = digits("240777")
    boxes[3] = TeacherReading(None, "blank", 0.5, (("7", 0.9), (None, 0.1)), True)
    assert read_student_number(boxes) == ("240777", True)
    match = match_student(boxes, ROSTER)
    assert match.student == ROSTER[2] and not match.needs_review
    # Nothing usable led the second look: the number has a gap.
    boxes[3] = TeacherReading(None, "blank", 0.5, (("77", 0.6), ("7", 0.3)), True)
    assert read_student_number(boxes) == (None, True)
    boxes[3] = TeacherReading(None, "blank", 0.99, (("7", 0.01),), False)  # a sure blank
    assert read_student_number(boxes) == (None, True)


def test_shorter_numbers_and_malformed_boxes() -> None:
    assert read_student_number(digits("1234")) == ("1234", False)
    gap = [TeacherReading("1"), TeacherReading(None, "blank"), TeacherReading("2")]
    assert read_student_number(gap) == (None, True)
    two_chars = [TeacherReading("12")]
    assert read_student_number(two_chars) == (None, True)
    assert match_student(digits(""), ROSTER).needs_review


def test_one_edit_apart() -> None:
    assert one_edit_apart("1234", "1244") and one_edit_apart("1234", "123")
    assert not one_edit_apart("1234", "1234") and not one_edit_apart("1234", "4321")


def test_later_pages_of_a_copy_take_the_student_from_page_one() -> None:
    first = PageResult("a.jpg", "graded", variant=3, page_number=1, student=ROSTER[1],
                       identity_source="student_number")
    second = PageResult("b.jpg", "graded", variant=3, page_number=2)
    other = PageResult("c.jpg", "graded", variant=4, page_number=2)
    link_copies([second, first, other])
    assert second.student == ROSTER[1] and other.student is None


def test_later_pages_of_a_photocopied_copy_go_to_review() -> None:
    """Two students wrote on copies of one printed copy: its page 2s could be either's."""
    amina = PageResult("a1.jpg", "graded", variant=3, page_number=1, student=ROSTER[0],
                       identity_source="student_number")
    bruno = PageResult("b1.jpg", "graded", variant=3, page_number=1, student=ROSTER[1],
                       identity_source="student_number")
    page_twos = [PageResult(f"{n}2.jpg", "graded", variant=3, page_number=2) for n in "ab"]
    link_copies([amina, *page_twos, bruno])
    for page in page_twos:
        assert page.student is None and page.identity_review
        assert "photocopied" in page.message
    assert (amina.student, bruno.student) == (ROSTER[0], ROSTER[1])
    assert not amina.identity_review and not bruno.identity_review


def test_a_later_page_takes_the_student_from_the_page_one_that_names_one() -> None:
    """Two photos of page 1, the first with its number unreadable: page 2 still finds Bruno."""
    unreadable = PageResult("a1.jpg", "graded", variant=3, page_number=1,
                            identity_source="student_number", identity_review=True)
    named = PageResult("b1.jpg", "graded", variant=3, page_number=1, student=ROSTER[1],
                       identity_source="student_number")
    later = PageResult("c2.jpg", "graded", variant=3, page_number=2)
    link_copies([unreadable, named, later])
    assert later.student == ROSTER[1] and not later.identity_review
