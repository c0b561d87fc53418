"""Walking the review queue at a terminal: the offline laptop's way to settle doubtful boxes.

First, the fields in review only because the reader doubted a reading that is exactly the
key's answer (most of a queue) are shown a group at a time, each crop with its reading: Enter
confirms the group, item numbers keep those for a closer look.  Then, for each field still in
review, the teacher sees the crop (its file path and, at a terminal, a small preview drawn
with characters) with the reader's guess and alternatives, and answers: Enter keeps the
reading, a number replaces it, ``b`` marks it blank, ``s`` skips, ``q`` stops.
Unidentified or doubtful students are settled the same way by typing a student id (a later
page of a numbered copy offers the student just named for its page 1).
Every decision is stored with who and when, dependants are re-graded (one that thereby
leaves the queue, e.g. a sum waiting on a doubted product, is not asked about), outputs
regenerated.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from grader.grade import PHOTOCOPIED_NOTE, regrader_for
from grader.results import FieldResult, PageResult
from grader.score import READER_UNSURE, parse_number
from worker.jobs import regenerate_outputs
from worker.store import Regrade, Store, open_store

ASCII_RAMP = " .:-=+*#%@"
InputFn = Callable[[str], str]
OutputFn = Callable[[str], None]


@dataclass
class ReviewTally:
    kept: int = 0
    corrected: int = 0
    skipped: int = 0
    settled: int = 0  # left the queue when a decision on a field they depend on re-graded them
    students: int = 0


def preview(crop_path: str | None, width: int = 48, colour: bool = False) -> list[str]:
    """The crop as lines of text: half-block cells in grey when ``colour``, else ASCII shades."""
    if not crop_path:
        return ["(no crop saved)"]
    image = cv2.imread(crop_path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        return [f"(crop {crop_path} could not be read)"]
    rows = max(2, round(width * image.shape[0] / image.shape[1] / (1 if colour else 2)))
    small = cv2.resize(image, (width, rows + rows % 2 if colour else rows),
                       interpolation=cv2.INTER_AREA)
    if colour:
        return [half_block_line(small[r], small[r + 1]) for r in range(0, small.shape[0], 2)]
    scale = (len(ASCII_RAMP) - 1) / 255.0
    return ["".join(ASCII_RAMP[int((255 - v) * scale)] for v in row) for row in small]


def half_block_line(top: np.ndarray, bottom: np.ndarray) -> str:
    cells = [f"\x1b[38;2;{t};{t};{t}m\x1b[48;2;{b};{b};{b}m\u2580" for t, b in
             zip(top.tolist(), bottom.tolist(), strict=True)]
    return "".join(cells) + "\x1b[0m"


def describe(field: FieldResult) -> str:
    guess = field.read if field.read is not None else "(blank)"
    others = ", ".join(f"{t or 'blank'} {p:.2f}" for t, p in field.alternatives[1:4])
    return (f"{field.field_id} '{field.label}': read {guess} ({field.confidence:.2f})"
            + (f"; also {others}" if others else "") + f" - {field.reason}")


def ask_field(field: FieldResult, ask: InputFn, say: OutputFn) -> tuple[str, str | None]:
    """('keep'|'set'|'skip'|'quit', value) from the teacher's answer; re-asks on nonsense."""
    while True:
        answer = ask("  Enter = keep, number = correct it, b = blank, s = skip, q = quit > ")
        answer = answer.strip()
        if answer == "":
            return "keep", None
        if answer.lower() in {"q", "s", "b"}:
            return {"q": ("quit", None), "s": ("skip", None), "b": ("set", None)}[answer.lower()]
        if parse_number(answer) is not None:
            return "set", answer
        say(f"  '{answer}' is not a number; type it like -12, 3.5 or .25")


# How many doubted readings of the key's answer are shown together for one confirmation.
GROUP_SIZE = 12


def reads_as_the_key(field: FieldResult) -> bool:
    """In review only because the reader doubted a reading that is exactly the key's answer.

    Most of a queue is such fields, nearly all read right: checking them a group at a time,
    every crop still in view, is much quicker than one by one.
    """
    value = parse_number(field.read)
    return (field.reader_unsure and field.reason.startswith(READER_UNSURE)
            and value is not None and value == parse_number(field.expected))


def chosen_numbers(answer: str, count: int) -> set[int] | None:
    """The item numbers typed ("2 5", "2,5"), or None when something typed is not one."""
    words = answer.replace(",", " ").split()
    if not all(w.isdigit() and 1 <= int(w) <= count for w in words):
        return None
    return {int(w) for w in words}


def ask_group(count: int, ask: InputFn, say: OutputFn) -> set[int] | None:
    """The items of a group to look at one by one (empty: all right); None to quit."""
    while True:
        answer = ask("  Enter = all read right, numbers (e.g. 2 5) = look at those one by one, "
                     "q = quit > ").strip()
        if answer.lower() == "q":
            return None
        flagged = chosen_numbers(answer, count)
        if flagged is not None:
            return flagged
        say(f"  type item numbers from 1 to {count}, or q")


class Confirms(Protocol):
    """What confirming a group needs of the store."""

    def accept_review(self, page_id: int, field_id: str, who: str, regrade: Regrade,
                      reason: str = ...) -> object: ...


def confirm_in_groups(store: Confirms, queue: Sequence[tuple[int, FieldResult]], ask: InputFn,
                      say: OutputFn, who: str, colour: bool, regrade: Regrade,
                      tally: ReviewTally) -> bool:
    """Show the doubted readings of the key's answer a group at a time; Enter confirms the
    group, numbers keep those fields for one-by-one review.  False if the teacher quit."""
    matching = [(page_id, field) for page_id, field in queue if reads_as_the_key(field)]
    if matching:
        say(f"\n{len(matching)} field(s) read as exactly the key's answer, but below the "
            f"reader's threshold: check them {GROUP_SIZE} at a time.")
    for start in range(0, len(matching), GROUP_SIZE):
        group = matching[start:start + GROUP_SIZE]
        for number, (_page_id, field) in enumerate(group, start=1):
            say(f"\n  ({number}) {field.field_id} '{field.label}': read {field.read} "
                f"({field.confidence:.2f})  crop: {field.crop_path or '(none)'}")
            for line in preview(field.crop_path, width=24, colour=colour):
                say("      " + line)
        flagged = ask_group(len(group), ask, say)
        if flagged is None:
            return False
        for number, (page_id, field) in enumerate(group, start=1):
            if number not in flagged:
                store.accept_review(page_id, field.field_id, who, regrade,
                                    "reading confirmed in a group")
                tally.kept += 1
    return True


def review_fields(store: Store, worksheet_id: str, ask: InputFn, say: OutputFn,
                  who: str, colour: bool) -> tuple[ReviewTally, bool]:
    regrade = regrader_for(store.get_key(worksheet_id))
    tally = ReviewTally()
    if not confirm_in_groups(store, store.review_queue(worksheet_id), ask, say, who, colour,
                             regrade, tally):
        return tally, False
    # Confirmed fields re-graded their dependants, so the rest of the queue is read again.
    queue = store.review_queue(worksheet_id)
    decided: dict[int, PageResult] = {}  # pages as the decisions of this walk left them
    for number, (page_id, queued) in enumerate(queue, start=1):
        field = as_it_stands(decided.get(page_id), queued)
        if field.verdict != "review":
            # A decision on an earlier field of the page re-graded this one (it waited on it).
            say(f"\n[{number}/{len(queue)}] {field.field_id}: settled by an earlier decision, "
                f"now {field.verdict}")
            tally.settled += 1
            continue
        show_field(f"[{number}/{len(queue)}]", field, say, colour)
        action, value = ask_field(field, ask, say)
        if action == "quit":
            return tally, False
        if action == "skip":
            tally.skipped += 1
        elif action == "keep":
            decided[page_id] = store.accept_review(page_id, field.field_id, who, regrade)
            tally.kept += 1
        else:
            decided[page_id] = store.apply_override(page_id, field.field_id, value, who,
                                                    "typed at review", regrade)
            tally.corrected += 1
    return tally, True


def show_field(heading: str, field: FieldResult, say: OutputFn, colour: bool) -> None:
    """The field, its reading and doubt, its crop's path and a preview of the crop."""
    say(f"\n{heading} {describe(field)}")
    say(f"  crop: {field.crop_path or '(none)'}")
    for line in preview(field.crop_path, colour=colour):
        say("  " + line)


def as_it_stands(page: PageResult | None, queued: FieldResult) -> FieldResult:
    """``queued`` as it stands on ``page`` (the page after a decision of this walk), if any."""
    if page is None:
        return queued
    return next((f for f in page.fields if f.field_id == queued.field_id), queued)


def review_students(store: Store, worksheet_id: str, ask: InputFn, say: OutputFn,
                    who: str, tally: ReviewTally) -> None:
    known = {s.student_id: s.name for s in store.roster(worksheet_id)}
    numbered = {i for i, p in enumerate(store.get_key(worksheet_id)["pages"])
                if p.get("student_number_boxes")}
    named: dict[int, str] = {}  # printed copy (variant) -> student named here for page 1
    for stored in store.identity_queue(worksheet_id):
        page = stored.page
        offered, why = offered_student(page, named, numbered)
        say(f"\nWho wrote {page.source}? number read: {page.student_number_read or '-'}, "
            f"best match: {offered or 'none'}{why}. {page.message}")
        enter = f"Enter = {offered}" if offered else "Enter = skip"
        while True:
            answer = ask(f"  student id ({enter}, s = skip, q = quit) > ").strip()
            if answer.lower() == "q":
                return
            if answer.lower() == "s" or (answer == "" and offered is None):
                break
            student_id = answer or offered
            if student_id in known:
                store.set_page_student(stored.page_id, student_id, who)
                tally.students += 1
                if page.pdf_page in numbered and page.variant is not None:
                    # A second student named for one copy: photocopied, offer neither.
                    earlier = named.get(page.variant, student_id)
                    named[page.variant] = student_id if earlier == student_id else ""
                break
            say(f"  {student_id} is not on the roster")


def offered_student(page: PageResult, named: dict[int, str],
                    numbered: set[int]) -> tuple[str | None, str]:
    """Whom to offer for ``page`` at Enter, and why if not the grader's guess.

    A later page of a numbered copy took page 1's guess when it was graded; once the teacher
    has named page 1's student here, that student is offered instead (the guess may be the
    one just ruled out), unless the copy was photocopied.
    """
    copy = named.get(page.variant) if page.variant is not None else None
    if copy and page.pdf_page not in numbered and page.message != PHOTOCOPIED_NOTE:
        return copy, " (named for page 1 of this printed copy)"
    return (page.student.student_id if page.student else None), ""


def run_review(out_dir: Path, ask: InputFn = input, say: OutputFn = print,
               database_url: str | None = None, colour: bool = False,
               who: str | None = None) -> ReviewTally:
    reviewer = who or getpass.getuser()
    with open_store(database_url, out_dir) as store:
        worksheets = store.list_worksheets()
        if not worksheets:
            say(f"Nothing graded in {out_dir} yet; run papergrade grade first.")
            return ReviewTally()
        worksheet_id = worksheets[-1][0]
        tally, finished = review_fields(store, worksheet_id, ask, say, reviewer, colour)
        if finished:
            review_students(store, worksheet_id, ask, say, reviewer, tally)
    regenerate_outputs(out_dir, worksheet_id, database_url)
    settled = f", {tally.settled} settled by earlier decisions" if tally.settled else ""
    say(f"\nKept {tally.kept}, corrected {tally.corrected}, skipped {tally.skipped} field(s)"
        f"{settled}; identified {tally.students} page(s). Outputs in {out_dir} are up to date.")
    return tally
