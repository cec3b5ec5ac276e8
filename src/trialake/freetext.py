"""Free-text cleaning shared by the DICOM descriptors and the clinical text columns.

One vocabulary rule for both (PS3.15 Annex E, Clean Descriptors option, applied as an allow-list):
a text keeps only words of a vocabulary and short numbers, never a token of the subject's own
identifying values. What is dropped, and why:

- words not in the vocabulary (names, places, free comments);
- numbers with more than three integer digits, or more than three digits after the decimal
  point (hospital numbers, phone numbers, years, "1.20200305991"), and dotted chains of
  numbers ("1.2.826.0.1.3680043", UIDs and dates written with dots);
- integers written with a leading zero ("03", "007"): how days, months and IDs are written;
- two or more integers in a row ("CHEST 3 5", "03/05"): month/day fragments of a date;
- so any date inside the text goes too ("2020-03-05", "5.3.2020", "20200305").

A kept number may carry the unit ``MM`` ("5MM"); kernel names such as ``B70f`` or ``FC13`` are kept.
Words are compared without accents ("Léger" matches LEGER) and kept in ASCII ("Leger").

Text kept whole (device names, coded clinical values) is checked with :func:`is_identifying_text`
instead: it must carry no token of the subject's identifying values, no run of five or more
digits and no date.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

_TOKEN = re.compile(r"[^\W_]+(?:\.[0-9]+)*")
#: A short number: no leading zero (except "0" itself), <= 3 integer and <= 3 decimal digits, optional MM.
_SHORT_NUMBER = re.compile(r"^(?:0|[1-9][0-9]{0,2})(?:\.[0-9]{1,3})?(?:MM)?$")
_INTEGER = re.compile(r"^[0-9]+$")
_KERNEL_NAME = re.compile(r"^[A-Z]{1,2}[0-9]{1,3}[A-Z]?$")

#: Words allowed in cleaned DICOM descriptors (upper case).
DESCRIPTOR_VOCABULARY: frozenset[str] = frozenset("""
CT MR MRI PET SC CTA HRCT LDCT CHEST THORAX THORACIC LUNG LUNGS PULMONARY ABDOMEN PELVIS HEAD NECK
WHOLE BODY AXIAL AX CORONAL COR SAGITTAL SAG OBLIQUE MPR MIP MINIP VR 3D 2D SCOUT TOPOGRAM
LOCALIZER LOCALISER SURVIEW SCANOGRAM HIGH LOW RESOLUTION DOSE ULTRA STANDARD STD ROUTINE SOFT
TISSUE BONE MEDIASTINUM MEDIASTINAL WINDOW KERNEL SHARP SMOOTH THIN THICK SLICE SLICES MM
CONTRAST NONCONTRAST ENHANCED UNENHANCED NC CE WITH WITHOUT W WO NON PLAIN NATIVE ARTERIAL VENOUS PORTAL DELAYED PHASE INSPIRATION
EXPIRATION INSP EXP INSPIRATORY EXPIRATORY PRONE SUPINE SPIRAL HELICAL SEQUENTIAL RECON
RECONSTRUCTION ITERATIVE FBP IR ASIR SAFIRE ADMIRE IMR IDOSE AIDR PROTOCOL SERIES STUDY
FOLLOW UP BASELINE DAY WEEK VISIT SCREENING COVID SARS COV PNEUMONIA T1 T2 FLAIR DWI ADC PD STIR
GRE SE TSE FSE EPI FDG AC NAC CORRECTED UNCORRECTED SCREEN SAVE SAVED REPORT SUMMARY PRIMARY
SECONDARY ORIGINAL DERIVED AND OF THE TO FOR ON IN
""".split())

#: Extra words allowed in clinical free text (visit names, qualitative results, severities).
CLINICAL_VOCABULARY: frozenset[str] = DESCRIPTOR_VOCABULARY | frozenset("""
UNSCHEDULED SCHEDULED END START EARLY TERMINATION DISCHARGE RANDOMIZATION RANDOMISATION ENROLLMENT
ENROLMENT TREATMENT DOSE DOSING INFUSION CYCLE MONTH MONTHS WEEKS DAYS HOUR HOURS PRE POST EOT EOS
V D M TEST RETEST REPEAT
POSITIVE NEGATIVE POS NEG TRACE DETECTED UNDETECTABLE NOT DONE ND NA NEGATIVE NORMAL ABNORMAL
HEMOLYZED HEMOLYSED HAEMOLYSED CLOTTED INSUFFICIENT SAMPLE SPECIMEN LIPEMIC ICTERIC
MILD MODERATE SEVERE LIFE THREATENING FATAL GRADE LEGER LEVE MODERE MODERADO GRAVE
YES NO Y N UNKNOWN
""".split())


_LONG_DIGITS = re.compile(r"[0-9]{5,}")
#: A date written in any of the usual ways: 20200305, 2020-03-05, 2020/3/5, 05.03.2020, 3/5/20.
_DATE = re.compile(r"(?:19|20)[0-9]{2}[-./ ]?(?:0?[1-9]|1[0-2])[-./ ]?(?:0?[1-9]|[12][0-9]|3[01])(?![0-9])"
                   r"|(?<![0-9])[0-9]{1,2}[-./][0-9]{1,2}[-./](?:[0-9]{4}|[0-9]{2})(?![0-9])")


def fold(word: str) -> str:
    """A word in upper case without accents (the form compared with vocabularies and PHI tokens)."""
    return _ascii(word).upper()


def is_identifying_text(text: str, *, phi_tokens: Iterable[str] = frozenset(), long_numbers: bool = False) -> bool:
    """Whether text kept whole would carry identifying data: a token of ``phi_tokens`` (upper case,
    unaccented), a date, or (unless ``long_numbers``) a run of five or more digits."""
    if _DATE.search(text) or (not long_numbers and _LONG_DIGITS.search(text)):
        return True
    blocked = phi_tokens if isinstance(phi_tokens, (set, frozenset)) else frozenset(phi_tokens)
    return bool(blocked) and any(fold(t) in blocked for t in split_words(text))


def compute_stripped_text(text: str, *, phi_tokens: Iterable[str] = frozenset(), long_numbers: bool = False) -> str:
    """A coded value with what :func:`is_identifying_text` objects to taken out: dates, (unless
    ``long_numbers``) runs of five or more digits, and words of ``phi_tokens``; the remaining
    words in ASCII, joined by single spaces."""
    blocked = phi_tokens if isinstance(phi_tokens, (set, frozenset)) else frozenset(phi_tokens)
    text = _DATE.sub(" ", text)
    words = [_ascii(w) for w in split_words(text) if fold(w) not in blocked]
    return " ".join(w for w in words if w and (long_numbers or not _LONG_DIGITS.search(w)))


def split_words(text: str) -> list[str]:
    """Words and numbers of a free text (``1.25`` and ``1.2.840`` stay one token); punctuation is dropped."""
    return _TOKEN.findall(text)


def compute_clean_text(text: str, *, vocabulary: frozenset[str], phi_tokens: Iterable[str] = frozenset()) -> str:
    """The words of ``text`` that the vocabulary rule keeps (see the module docstring), in ASCII
    (accents dropped, case kept), joined by single spaces; ``phi_tokens`` (upper case) are
    dropped even when they are vocabulary words."""
    return _clean(text, vocabulary, phi_tokens if isinstance(phi_tokens, frozenset) else frozenset(phi_tokens))


@lru_cache(maxsize=8192)  # a series repeats its descriptors, an export its visit names
def _clean(text: str, vocabulary: frozenset[str], blocked: frozenset[str]) -> str:
    tokens = [ascii_word for token in split_words(text) if (ascii_word := _ascii(token))]
    integers = [bool(_INTEGER.match(t)) for t in tokens]
    kept = []
    for i, token in enumerate(tokens):
        upper = token.upper()
        if upper in blocked:
            continue
        if integers[i] and ((i > 0 and integers[i - 1]) or (i + 1 < len(tokens) and integers[i + 1])):
            continue  # two integers in a row: a day and a month
        if upper in vocabulary or _SHORT_NUMBER.match(upper) or _KERNEL_NAME.match(upper):
            kept.append(token)
    return " ".join(kept)


@lru_cache(maxsize=65536)
def _ascii(word: str) -> str:
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode("ascii")
