"""Clinical exports: readers, bronze rows, lab and other domain standardization into silver.

Flow of a landing file: parse_clinical_file -> derive_bronze_clinical -> per domain
derive_exposure, derive_subjects, derive_visits, derive_labs, derive_sixmwt,
derive_lung_function, derive_adverse_events, derive_disposition. Every derive_* returns (rows, rejections) with the
silver/rejections columns; rows in = rows out + rejected rows.
"""

from trialake.clinical.bronze import DEFAULT_DOMAIN_VARIABLES, BronzeConfig, derive_bronze_clinical
from trialake.clinical.common import REJECTION_SCHEMA
from trialake.clinical.domains import (
    AdverseEventConfig,
    SubjectConfig,
    derive_adverse_events,
    derive_disposition,
    derive_exposure,
    derive_lung_function,
    derive_sixmwt,
    derive_subjects,
    derive_visits,
)
from trialake.clinical.labs import LAB_COLUMNS, derive_labs
from trialake.clinical.mapping import TestMapping, TestSpec, load_test_mapping
from trialake.clinical.readers import ClinicalFileError, ParsedFile, parse_clinical_file
from trialake.clinical.standardize import MeasurementStandards, default_standards, derive_standard_lookups
from trialake.clinical.units import UnitCatalog, UnitConversionError, compute_conversion_factor, load_unit_catalog

__all__ = [
    "DEFAULT_DOMAIN_VARIABLES",
    "LAB_COLUMNS",
    "REJECTION_SCHEMA",
    "AdverseEventConfig",
    "BronzeConfig",
    "ClinicalFileError",
    "MeasurementStandards",
    "ParsedFile",
    "SubjectConfig",
    "TestMapping",
    "TestSpec",
    "UnitCatalog",
    "UnitConversionError",
    "compute_conversion_factor",
    "default_standards",
    "derive_standard_lookups",
    "derive_adverse_events",
    "derive_bronze_clinical",
    "derive_disposition",
    "derive_exposure",
    "derive_labs",
    "derive_lung_function",
    "derive_sixmwt",
    "derive_subjects",
    "derive_visits",
    "load_test_mapping",
    "load_unit_catalog",
    "parse_clinical_file",
]
