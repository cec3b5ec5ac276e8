"""Keyed pseudonyms shared by imaging and clinical data.

Both functions are HMAC-SHA256 over the input with the lake secret (kept in ``restricted/``), each
with its own domain-separation label, so the same input gives the same output in every run and
nobody without the secret can recompute or invert them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

MIN_SECRET_BYTES = 16
_UID_MAX_LEN = 64
_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


@lru_cache(maxsize=16384)  # the slices of a series repeat their study, series and frame UIDs
def _digest(secret: bytes, label: bytes, value: str) -> bytes:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"secret: expected at least {MIN_SECRET_BYTES} bytes of key material")
    return hmac.new(secret, label + b"\x00" + value.encode("utf-8"), hashlib.sha256).digest()


def compute_date_shift_days(secret: bytes, usubjid: str, *, max_days: int = 365) -> int:
    """Per-subject date offset in days, in ``-max_days..-1`` (never 0, so a shift always happens).

    Every date about the subject (DICOM and clinical) is moved by this same offset, which keeps
    intervals, study days and weekdays-apart intact while hiding the calendar dates.
    """
    if not usubjid:
        raise ValueError("usubjid: must be a non-empty string")
    if max_days < 1:
        raise ValueError(f"max_days: must be >= 1, got {max_days}")
    value = int.from_bytes(_digest(secret, b"trialake-date-shift", usubjid)[:8], "big")
    return -(value % max_days + 1)


def compute_pseudo_uid(secret: bytes, uid: str, *, root: str = "2.25") -> str:
    """Deterministic replacement for a DICOM UID: ``<root>.<decimal of 128 HMAC bits>``.

    With the default root ``2.25`` (UUID-derived UIDs, PS3.5 B.2) the result is at most 44
    characters. Longer roots keep the leading digits that fit in 64 characters.
    """
    if not uid:
        raise ValueError("uid: must be a non-empty string")
    if not _UID_ROOT.match(root) or len(root) > _UID_MAX_LEN - 2:
        raise ValueError(f"root: {root!r} is not a valid UID root of at most 62 characters")
    number = str(int.from_bytes(_digest(secret, b"trialake-uid", uid)[:16], "big"))
    return f"{root}.{number[: _UID_MAX_LEN - len(root) - 1]}"
