"""Errors every layer may raise or handle, kept apart so pure modules need not import the AWS layer."""

from __future__ import annotations


class AmbiguousWriteError(Exception):
    """A write whose request may have reached AWS but whose answer was lost (a 5xx, a reset, a read
    timeout). Sending it again blindly could make the change twice: check whether it happened first."""


class LeaseLostError(Exception):
    """This replica may no longer write: its leadership lease ran out or was taken over."""


class ChangeDeadlineError(Exception):
    """A change ran out of its time budget: nothing more of it is sent."""
