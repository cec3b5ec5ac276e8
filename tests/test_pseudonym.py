"""Keyed pseudonyms: date offsets and replacement UIDs."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialake.pseudonym import compute_date_shift_days, compute_pseudo_uid

SECRET = b"0123456789abcdef0123456789abcdef"
UID_SYNTAX = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def test_date_shift_follows_the_documented_hmac_formula() -> None:
    digest = hmac.new(SECRET, b"trialake-date-shift\x00UCMSC-01-007", hashlib.sha256).digest()
    expected = -(int.from_bytes(digest[:8], "big") % 365 + 1)
    assert compute_date_shift_days(SECRET, "UCMSC-01-007") == expected


@settings(max_examples=100, deadline=None)
@given(usubjid=st.text(min_size=1, max_size=30), max_days=st.integers(1, 1000))
def test_date_shift_is_negative_bounded_and_stable(usubjid: str, max_days: int) -> None:
    shift = compute_date_shift_days(SECRET, usubjid, max_days=max_days)
    assert -max_days <= shift <= -1
    assert compute_date_shift_days(SECRET, usubjid, max_days=max_days) == shift


def test_date_shift_depends_on_secret_and_subject() -> None:
    subjects = [f"S-{i:03d}" for i in range(200)]
    shifts = [compute_date_shift_days(SECRET, s) for s in subjects]
    other = [compute_date_shift_days(b"another secret of 32 bytes......", s) for s in subjects]
    assert len(set(shifts)) > 100  # 200 draws from 365 values
    assert sum(a != b for a, b in zip(shifts, other)) > 190


def test_date_shift_with_one_day_window_is_always_minus_one() -> None:
    assert {compute_date_shift_days(SECRET, f"S{i}", max_days=1) for i in range(20)} == {-1}


@pytest.mark.parametrize(("secret", "usubjid", "max_days", "message"), [
    (b"short", "S1", 365, "secret"), (SECRET, "", 365, "usubjid"), (SECRET, "S1", 0, "max_days"),
])
def test_date_shift_rejects_bad_arguments(secret: bytes, usubjid: str, max_days: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_date_shift_days(secret, usubjid, max_days=max_days)


def test_pseudo_uid_follows_the_documented_hmac_formula() -> None:
    uid = "1.2.826.0.1.3680043.8.498.123"
    digest = hmac.new(SECRET, b"trialake-uid\x00" + uid.encode(), hashlib.sha256).digest()
    assert compute_pseudo_uid(SECRET, uid) == "2.25." + str(int.from_bytes(digest[:16], "big"))


@settings(max_examples=30, deadline=None)
@given(uid=st.from_regex(r"\A[1-9][0-9]{0,5}(\.[1-9][0-9]{0,8}){1,12}\Z"))
def test_pseudo_uid_is_a_valid_uid_and_deterministic(uid: str) -> None:
    pseudo = compute_pseudo_uid(SECRET, uid)
    assert UID_SYNTAX.match(pseudo) and len(pseudo) <= 64 and pseudo.startswith("2.25.")
    assert compute_pseudo_uid(SECRET, uid) == pseudo
    assert pseudo != uid


def test_pseudo_uids_do_not_collide_and_depend_on_secret() -> None:
    uids = [f"1.2.3.{i}" for i in range(2000)]
    pseudo = {compute_pseudo_uid(SECRET, u) for u in uids}
    assert len(pseudo) == len(uids)
    assert compute_pseudo_uid(b"another secret of 32 bytes......", "1.2.3.4") != compute_pseudo_uid(SECRET, "1.2.3.4")


def test_pseudo_uid_under_a_long_root_is_cut_to_64_characters() -> None:
    root = "1.2.826.0.1.3680043.10.999.1234567890.1234567890"
    pseudo = compute_pseudo_uid(SECRET, "1.2.3", root=root)
    assert pseudo.startswith(root + ".") and len(pseudo) == 64 and UID_SYNTAX.match(pseudo)


@pytest.mark.parametrize("root", ["2.025", "abc", "1..2", "1." * 40])
def test_pseudo_uid_rejects_an_invalid_root(root: str) -> None:
    with pytest.raises(ValueError, match="root"):
        compute_pseudo_uid(SECRET, "1.2.3", root=root)
