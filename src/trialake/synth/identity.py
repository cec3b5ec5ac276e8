"""Fake identifying data (PHI) for the synthetic trial, and the ledger of where it was written.

Every value is long and distinctive (no two-letter surnames), so that a leak test searching the
lake for the strings in ``truth/phi.json`` finds real leaks and nothing else.
"""
from __future__ import annotations

import json
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from trialake.synth.model import STREAM_IDENTITY, SubjectPlan

FAMILY_NAMES = (
    "Castellanos", "Whitcombe", "Okonkwo", "Lindqvist", "Marchetti", "Abernathy", "Valdivieso",
    "Thorsby", "Nakashima", "Ferreira", "Kowalczyk", "Montgomery", "Ibáñez", "Núñez", "Delacroix",
    "Hallstrom", "Pemberton", "Szabo-Reyes", "Quintanilla", "Farrowdale", "Bertolucci", "Achterberg",
    "Oyelaran", "Vasquez-Moll", "Strathmore", "Zielinski", "Galbraith", "Moravec", "Echeverría",
    "Thistlewood",
)
GIVEN_NAMES = (
    "Mariela", "Theodore", "Chiamaka", "Ingrid", "Lorenzo", "Beatrix", "Joaquín", "Henrietta", "Haruki",
    "Rosalind", "Wojciech", "Cordelia", "Leocadia", "Bartholomew", "Ottilie", "Evander", "Zsofia",
    "Ignatius", "Marisol", "Percival", "Florentyna", "Augustin", "Temperance", "Olufemi", "Seraphina",
    "Thaddeus", "Wilhelmina", "Cassius", "Rosamund", "Leopold",
)


@dataclass(frozen=True)
class Site:
    """A site's identifying details (they appear in DICOM headers and site exports)."""

    siteid: str
    institution: str
    address: str
    department: str
    physicians: tuple[str, ...]  # DICOM PN, e.g. HARTWELL-OSEI^AMARA^^DR
    operators: tuple[str, ...]
    investigator: str  # "Given Family"


SITES = (
    Site("S01", "Riverside Pulmonary Institute", "1450 Alder Crescent, Port Halden 30418",
         "Thoracic Imaging Riverside", ("HARTWELL-OSEI^AMARA^^DR", "PRENDERGAST^CALLUM^^DR"),
         ("TECHWORTH^DELPHINE", "OKAFOR-LUND^MAGNUS"), "Amara Hartwell-Osei"),
    Site("S02", "Hospital Universitario Santa Brigida", "Calle de Olmedo 77, 28019 Villaverde Alto",
         "Radiodiagnostico Santa Brigida", ("ARRIZABALAGA^ITZIAR^^DRA", "VILLALOBOS^EUSEBIO^^DR"),
         ("GOICOECHEA^NEREA", "BALLESTEROS^IKER"), "Itziar Arrizabalaga"),
    Site("S03", "Eastgate Teaching Hospital", "88 Wenlock Row, Marsh Barton EX2 9QT",
         "Eastgate Radiology Suite 4", ("FAIRWEATHER^LAVINIA^^DR", "MACALLISTER^RUAIRIDH^^DR"),
         ("PENHALIGON^TAMSIN", "DUNWOODY^CORMAC"), "Lavinia Fairweather"),
)


@dataclass(frozen=True)
class Identity:
    """One subject's fake PHI."""

    family: str
    given: str
    mrn: str
    other_id: str
    birth_date: date
    referring: str  # DICOM PN of the referring physician
    accessions: tuple[str, ...]  # one per scan, in scan order

    @property
    def dicom_name(self) -> str:
        """PatientName as a DICOM PN in ASCII upper case (FAMILY^GIVEN)."""
        return f"{compute_ascii(self.family).upper()}^{compute_ascii(self.given).upper()}"


def compute_ascii(text: str) -> str:
    """Drop accents (Núñez -> Nunez)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def compute_mrn(site_index: int, number: int) -> str:
    """Site medical record number; each site has its own format (site 2: 12 digits, leading zeros)."""
    formats = (lambda n: f"MRN{n:07d}", lambda n: f"000{n:07d}{n % 97:02d}", lambda n: f"W3-KX{n:06d}")
    return formats[site_index](number)


def make_identity(subject: SubjectPlan, seed: int) -> Identity:
    """Draw a subject's fake PHI from its own random stream (consistent with AGE at consent)."""
    rng = np.random.default_rng([seed, subject.index, STREAM_IDENTITY])
    birth = subject.consent_date - timedelta(days=int(subject.age * 365.25 + rng.integers(1, 360)))
    site = SITES[subject.site_index]
    return Identity(
        family=str(rng.choice(FAMILY_NAMES)),
        given=str(rng.choice(GIVEN_NAMES)),
        mrn=compute_mrn(subject.site_index, 100000 + subject.index * 7919 % 900000),
        other_id=f"NID-{int(rng.integers(10**9, 10**10))}",
        birth_date=birth,
        referring=str(rng.choice(site.physicians)),
        accessions=tuple(f"ACC{subject.site_index + 1}{int(rng.integers(10**7, 10**8))}" for _ in subject.scans),
    )


def compute_age(birth: date, on: date) -> int:
    """Completed years of age on a date."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


class PhiLedger:
    """Collects every fake PHI value written, with its kind and where it was placed."""

    def __init__(self) -> None:
        self._where: dict[tuple[str, str], set[str]] = defaultdict(set)

    def add(self, value: str, kind: str, where: str) -> str:
        """Record ``value`` (returned unchanged, so calls can wrap the value being written)."""
        if value:
            self._where[(value, kind)].add(where)
        return value

    def render_json(self) -> bytes:
        """phi.json: {"values": [sorted unique strings], "placements": [{value, kind, where[]}]}."""
        placements = [
            {"value": value, "kind": kind, "where": sorted(where)}
            for (value, kind), where in sorted(self._where.items())
        ]
        doc = {"values": sorted({value for value, _ in self._where}), "placements": placements}
        return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
