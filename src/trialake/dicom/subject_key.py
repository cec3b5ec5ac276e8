"""Map the DICOM PatientID (+ site, when the ID alone is ambiguous) to the trial's USUBJID."""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
from trialake.dicom.elements import RawView, tag_of

_PATIENT_ID, _CLINICAL_TRIAL_SITE_ID, _ISSUER_OF_PATIENT_ID = map(tag_of, ("PatientID", "ClinicalTrialSiteID",
                                                                       "IssuerOfPatientID"))

_USUBJID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
KEY_COLUMNS = ("SITEID", "PATIENT_ID", "USUBJID")


@dataclass(frozen=True)
class SubjectKey:
    """The landing subject key (``keys/subject_key.csv``): (SITEID, PATIENT_ID) -> USUBJID.

    Build it with :meth:`from_frame`. The site of a DICOM file, needed only when a PATIENT_ID is
    used at two sites, is read from ClinicalTrialSiteID (0012,0030) or IssuerOfPatientID (0010,0021).
    """

    by_patient: dict[str, dict[str, str]]  # PATIENT_ID -> {SITEID: USUBJID}

    @classmethod
    def from_frame(cls, key: pl.DataFrame) -> SubjectKey:
        """Validate the key table (columns SITEID, PATIENT_ID, USUBJID; no conflicting rows)."""
        missing = [c for c in KEY_COLUMNS if c not in key.columns]
        if missing:
            raise ValueError(f"subject key: missing column(s) {', '.join(missing)}")
        mapping: dict[str, dict[str, str]] = {}
        for row, (site, patient, usubjid) in enumerate(key.select(KEY_COLUMNS).iter_rows(), start=1):
            site, patient, usubjid = (str(v).strip() if v is not None else "" for v in (site, patient, usubjid))
            if not patient or not usubjid:
                raise ValueError(f"subject key row {row}: PATIENT_ID and USUBJID must not be empty")
            if not _USUBJID.match(usubjid):
                raise ValueError(f"subject key row {row}: USUBJID may contain only letters, digits, '.', '_' and '-'")
            if mapping.setdefault(patient, {}).setdefault(site, usubjid) != usubjid:
                raise ValueError(f"subject key row {row}: this SITEID/PATIENT_ID already maps to another USUBJID")
        return cls(mapping)

    def lookup(self, view: RawView) -> str:
        """USUBJID of the file's patient; raise LookupError with a PHI-free reason otherwise."""
        patient = view.text(_PATIENT_ID) or ""
        if not patient:
            raise LookupError("PatientID (0010,0020) is empty: the site must fill it with the patient's "
                              "site ID (as in keys/subject_key.csv) and re-send")
        candidates = self.by_patient.get(patient, {})
        if not candidates:
            raise LookupError("patient not in the subject key: add the site's PATIENT_ID -> USUBJID row to "
                              "keys/subject_key.csv (the file is retried when the key changes), or check "
                              "the PatientID the site exported")
        if len(set(candidates.values())) == 1:
            return next(iter(candidates.values()))
        for hint in (_CLINICAL_TRIAL_SITE_ID, _ISSUER_OF_PATIENT_ID):
            site = view.text(hint) or ""
            if site in candidates:
                return candidates[site]
        raise LookupError("PatientID is used at several sites in the subject key and the file names no site "
                          "(ClinicalTrialSiteID or IssuerOfPatientID): ask the site to set its SITEID there")
