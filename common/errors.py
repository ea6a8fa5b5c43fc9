"""The one base class for bad input, and the one check of an option against its choices.

The CLI turns a UserError into one line on stderr and exit status 2. Anything else that escapes a command is a bug
and keeps its traceback: no stage raises a bare ValueError or FileNotFoundError for something the user did.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: a path, an option, a file's content, a class mismatch. The message is one line for the user."""


class CheckpointError(UserError):
    """A run directory or weights file that is missing, unreadable or inconsistent."""


class OptionError(UserError):
    """An option outside its range or its choices."""


class NoSpaceError(UserError):
    """A file that could not be written because the disk (or the process's file-size limit, or a quota) is full.
    Not the user's mistake, but answered the same way: one line naming the file; files written before are kept.
    `then`: what to do once space is freed."""

    def __init__(self, path: object, reason: str, then: str = "run the command again") -> None:
        self.path, self.reason = path, reason
        where = f" to write {path}" if path else ""
        super().__init__(f"no space{where} ({reason}); files written before are kept: free some space and {then}")


def check_choice(what: str, value: str, choices: Iterable[str]) -> None:
    """Raises OptionError naming `what` and the valid choices unless `value` is one of them."""
    choices = tuple(choices)
    if value not in choices:
        raise OptionError(f"unknown {what} {value!r} (choose from {', '.join(choices)}){did_you_mean(value, choices)}")


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'X'?" for the closest of `choices` to a mistyped `value`, or "" when none is close."""
    plain = {"".join(ch for ch in str(c).lower() if ch.isalnum()): c for c in choices}  # "office-home" ~ "officehome"
    typed = "".join(ch for ch in str(value).lower() if ch.isalnum())
    starting = [p for p in plain if len(typed) >= 3 and p.startswith(typed)]  # "onnxrt" for "onnxruntime"
    close = starting[:1] or difflib.get_close_matches(typed, list(plain), n=1, cutoff=0.75)
    return f"; did you mean {plain[close[0]]!r}?" if close else ""


def check_choices(what: str, values: Iterable[str], choices: Iterable[str]) -> None:
    """Like check_choice, for a collection of values; names every unknown one."""
    choices = tuple(choices)
    unknown = sorted(set(values) - set(choices))
    if unknown:
        raise OptionError(f"unknown {what} {', '.join(map(repr, unknown))} (choose from {', '.join(choices)})")


def check_number(what: str, value: float, minimum: float, maximum: float = math.inf, above: bool = False) -> None:
    """Raises OptionError unless `value` is finite and within [minimum, maximum] (above minimum when `above`)."""
    low_ok = value > minimum if above else value >= minimum
    if not (math.isfinite(value) and low_ok and value <= maximum):
        bound = f"{'above' if above else 'at least'} {minimum}"
        bound += f" and at most {maximum}" if maximum < math.inf else ""
        raise OptionError(f"{what} must be a finite number {bound}, got {value}")
