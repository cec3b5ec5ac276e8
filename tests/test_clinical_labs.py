"""silver/labs, admiral-style: the expected table is written first, by hand, then compared."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.clinical import MeasurementStandards, default_standards, derive_labs, load_test_mapping

SHA = "a" * 64
D = dt.date
SUBJECTS = pl.DataFrame({"USUBJID": ["TL-001"], "RFSTDT": [D(2020, 3, 5)]})
VERSION = default_standards("LB").mapping.version

# source_row, LBTEST, LBORRES, LBORRESU, LBORNRLO, LBORNRHI, LBDT, decimal_mark of the file
INPUT = [
    (1, "Créatinine", "1,2", "mg/dL", "0,6", "1,3", D(2020, 3, 5), ","),
    (2, "CRP", "<0,5", "mg/dL", None, "1", D(2020, 3, 4), ","),
    (3, "Glucose", "90", "mg/dL", "70", "100", D(2020, 3, 6), "."),
    (4, "ALT", "1.5", "ukat/L", "0", "0.6", D(2020, 3, 5), "."),
    (5, "PLAT", "250,000", "/uL", "150,000", "400,000", D(2020, 3, 5), "."),
    (6, "WBC", "7,5", "10*3/uL", "4", "10", D(2020, 3, 5), "."),
    (7, "Bilirubine totale", ">25", "mg/dL", None, "1,2", D(2020, 3, 5), ","),
    (8, "D-dimer", "500", "ng/mL FEU", None, "500", D(2020, 3, 5), "."),
    (9, "HB", "13,5", "g/dL", "12", "16", D(2020, 3, 5), ","),
    (10, "Plaquettes", "1.234", "G/L", None, None, None, ","),
    (11, "Leucocytes", "3\u00a0500", "/mm3", None, None, D(2020, 3, 5), ","),
    (12, "D-dimer", "250", "ng/mL DDU", None, None, D(2020, 3, 5), "."),
    (13, "Vitamin Q", "5", "mg/L", None, None, D(2020, 3, 5), "."),
    (14, "CRP", "5", "mg/banana", None, None, D(2020, 3, 5), "."),
    (15, "WBC", "5", "mg/dL", None, None, D(2020, 3, 5), "."),
    (16, "CRP", "positive", "mg/L", None, None, D(2020, 3, 5), "."),
    (17, "CRP", None, "mg/L", None, None, D(2020, 3, 5), "."),
    (18, "CRP", "5", "mg/L", "abc", None, D(2020, 3, 5), "."),
    (19, "Créatinine", "1,2", "mg/dL", "0,6", "1,3", D(2020, 3, 5), ","),  # exact duplicate of row 1
    (20, "CRP", "1,2,3", "mg/L", None, None, D(2020, 3, 5), "."),
    (21, "CRP", "5", None, None, None, D(2020, 3, 5), "."),
    (22, "CRP", "Jeanne Dupont 0612345678", "mg/L", None, None, D(2020, 3, 5), "."),
]

# Expected silver rows, worked out by hand (6 significant digits):
#  1 creatinine 1.2 mg/dL x 88.4017 (= 10 mg/L / 113.12 g/mol, PubChem CID 588) = 106.082 umol/L;
#    range 0.6 -> 53.0410, 1.3 -> 114.922; day of first dose -> LBDY 1
#  2 CRP <0.5 mg/dL x 10 (1 dL = 0.1 L) = "<5" mg/L, LBSTRESN null; hi 1 -> 10; no lower limit
#    and every value < 5 is <= 10 -> NORMAL; day before first dose -> LBDY -1 (no day 0)
#  3 glucose 90 mg/dL x 10 / 180.16 g/mol (PubChem CID 5793) = 4.99556 mmol/L; 70 -> 3.88544,
#    100 -> 5.55062; LBDY 2
#  4 ALT 1.5 ukat/L x 60 (1 ukat = 1 umol/s = 60 umol/min = 60 U) = 90 U/L; 0.6 -> 36 -> HIGH
#  5 platelets "250,000" in a '.'-decimal file = 250000 /uL x 1e-3 (1/uL = 10^6/L) = 250 10^9/L
#  6 WBC "7,5" cannot be thousands (group of 1 digit) -> 7.5 x 10^3/uL = 7.5 10^9/L
#  7 bilirubin >25 mg/dL x 17.10396 (10 mg/L / 584.66 g/mol, PubChem CID 5280352) = ">427.599";
#    hi 1.2 -> 20.5247; every value > 427.599 is above it -> HIGH
#  8 D-dimer 500 ng/mL FEU = 0.5 mg/L FEU (1 ng/mL = 1 ug/L); hi 500 -> 0.5; NORMAL (bound inclusive)
#  9 Hb 13.5 g/dL x 10 = 135 g/L; 120 - 160 -> NORMAL
# 10 "1.234" in a ','-decimal file is 1234 G/L (giga = 10^9); no range -> LBNRIND null; no date
# 11 "3 500" (no-break space as thousands mark) /mm3 x 1e-3 (1 mm3 = 1 uL) = 3.5 10^9/L
EXPECTED_LABS = pl.DataFrame(
    [
        ("Créatinine", "CREAT", "14682-9", "1,2", "mg/dL", "0,6", "1,3", "106.082", 106.082, "umol/L", 53.041, 114.922, "NORMAL", D(2020, 3, 5), 1, 1),
        ("CRP", "CRP", "1988-5", "<0,5", "mg/dL", None, "1", "<5", None, "mg/L", None, 10.0, "NORMAL", D(2020, 3, 4), -1, 2),
        ("Glucose", "GLUC", "14749-6", "90", "mg/dL", "70", "100", "4.99556", 4.99556, "mmol/L", 3.88544, 5.55062, "NORMAL", D(2020, 3, 6), 2, 3),
        ("ALT", "ALT", "1742-6", "1.5", "ukat/L", "0", "0.6", "90", 90.0, "U/L", 0.0, 36.0, "HIGH", D(2020, 3, 5), 1, 4),
        ("PLAT", "PLAT", "777-3", "250,000", "/uL", "150,000", "400,000", "250", 250.0, "10^9/L", 150.0, 400.0, "NORMAL", D(2020, 3, 5), 1, 5),
        ("WBC", "WBC", "6690-2", "7,5", "10*3/uL", "4", "10", "7.5", 7.5, "10^9/L", 4.0, 10.0, "NORMAL", D(2020, 3, 5), 1, 6),
        ("Bilirubine totale", "BILI", "14631-6", ">25", "mg/dL", None, "1,2", ">427.599", None, "umol/L", None, 20.5247, "HIGH", D(2020, 3, 5), 1, 7),
        ("D-dimer", "DDIMER", "48065-7", "500", "ng/mL FEU", None, "500", "0.5", 0.5, "mg/L FEU", None, 0.5, "NORMAL", D(2020, 3, 5), 1, 8),
        ("HB", "HGB", "718-7", "13,5", "g/dL", "12", "16", "135", 135.0, "g/L", 120.0, 160.0, "NORMAL", D(2020, 3, 5), 1, 9),
        ("Plaquettes", "PLAT", "777-3", "1.234", "G/L", None, None, "1234", 1234.0, "10^9/L", None, None, None, None, None, 10),
        ("Leucocytes", "WBC", "6690-2", "3\u00a0500", "/mm3", None, None, "3.5", 3.5, "10^9/L", None, None, None, D(2020, 3, 5), 1, 11),
    ],
    schema={
        "LBTEST": pl.String, "LBTESTCD": pl.String, "LBLOINC": pl.String, "LBORRES": pl.String,
        "LBORRESU": pl.String, "LBORNRLO": pl.String, "LBORNRHI": pl.String, "LBSTRESC": pl.String,
        "LBSTRESN": pl.Float64, "LBSTRESU": pl.String, "LBSTNRLO": pl.Float64, "LBSTNRHI": pl.Float64,
        "LBNRIND": pl.String, "LBDT": pl.Date, "LBDY": pl.Int64, "source_row": pl.Int64,
    },
    orient="row",
)

EXPECTED_REJECTIONS = {
    12: "DDIMER: unit is DDU, standard is FEU; not converted without a configured factor",
    13: f"unknown test name (LBTEST/LBTESTCD not in LB mapping {VERSION})",
    14: "CRP: unit not recognised",
    15: "WBC: unit cannot be converted to 10^9/L",
    16: "LBORRES is not a number",  # reasons never quote a cell
    17: "LBORRES is empty",
    18: "LBORNRLO is not a number",
    19: "exact duplicate of row 1 of file aaaaaaaaaaaa",
    20: "LBORRES is not a number",
    21: "CRP: unit is empty (standard is mg/L)",
    22: "LBORRES is not a number",
}


def _bronze(rows=INPUT) -> pl.DataFrame:
    names = ["source_row", "LBTEST", "LBORRES", "LBORRESU", "LBORNRLO", "LBORNRHI", "LBDT", "decimal_mark"]
    frame = pl.DataFrame(rows, schema=names, orient="row")
    return frame.with_columns(
        pl.lit("TL-001").alias("USUBJID"), pl.lit("Day 1").alias("VISIT"),
        pl.lit(SHA).alias("source_sha256"), pl.lit("run-1").alias("run_id"),
    )


def test_labs_match_the_hand_worked_table() -> None:
    labs, _ = derive_labs(_bronze(), subjects=SUBJECTS)
    actual = labs.sort("source_row").select(EXPECTED_LABS.columns)
    assert_frame_equal(actual, EXPECTED_LABS, rel_tol=1e-9)
    assert set(labs.get_column("USUBJID")) == {"TL-001"}
    assert set(labs.get_column("VISIT")) == {"Day 1"}
    assert set(labs.get_column("run_id")) == {"run-1"}


def test_rejections_match_the_hand_written_reasons() -> None:
    _, rejected = derive_labs(_bronze(), subjects=SUBJECTS)
    assert dict(zip(rejected.get_column("source_row"), rejected.get_column("reason"))) == EXPECTED_REJECTIONS
    assert set(rejected.get_column("stage")) == {"labs"}
    assert rejected.columns == ["source_sha256", "source_row", "stage", "reason", "run_id"]


def test_every_row_is_in_labs_or_rejections_exactly_once() -> None:
    labs, rejected = derive_labs(_bronze(), subjects=SUBJECTS)
    assert sorted(labs.get_column("source_row").to_list() + rejected.get_column("source_row").to_list()) == list(
        range(1, len(INPUT) + 1)
    )


def test_ddu_is_converted_only_when_configured() -> None:
    # An assay-specific factor set by the trial: FEU = 2 x DDU; 250 ng/mL DDU -> 500 ng/mL FEU = 0.5 mg/L FEU.
    standards = default_standards("LB")
    configured = MeasurementStandards(standards.mapping, standards.units, basis_factors={("DDIMER", "DDU", "FEU"): 2.0})
    labs, rejected = derive_labs(_bronze([INPUT[11]]), subjects=SUBJECTS, standards=configured)
    assert rejected.height == 0
    assert labs.select("LBSTRESN", "LBSTRESU").to_dicts() == [{"LBSTRESN": 0.5, "LBSTRESU": "mg/L FEU"}]


def test_extending_the_mapping_needs_no_code_change(tmp_path: Path) -> None:
    mapping = tmp_path / "lb_mapping_v2.yaml"
    mapping.write_text(
        'version: "site-extension-1"\ndomain: LB\ntests:\n'
        "  - code: UREA\n    name: Urea\n    unit: mmol/L\n"
        "    per_mole: 60.06 g  # urea CH4N2O, 60.06 g/mol (PubChem CID 1176)\n"
        "    names: [Urée, BUN-urea]\n",
        encoding="utf-8",
    )
    standards = MeasurementStandards(load_test_mapping(mapping), default_standards("LB").units)
    rows = [(1, "Urée", "60,06", "mg/dL", None, None, D(2020, 3, 5), ","), (2, "CRP", "1", "mg/L", None, None, None, ".")]
    labs, rejected = derive_labs(_bronze(rows), subjects=SUBJECTS, standards=standards)
    # 60.06 mg/dL = 600.6 mg/L / 60.06 g/mol = 10 mmol/L
    assert labs.select("LBTESTCD", "LBSTRESN", "LBSTRESU").to_dicts() == [
        {"LBTESTCD": "UREA", "LBSTRESN": 10.0, "LBSTRESU": "mmol/L"}
    ]
    assert rejected.get_column("reason").to_list() == ["unknown test name (LBTEST/LBTESTCD not in LB mapping site-extension-1)"]


def test_site_test_code_is_used_when_the_name_is_unknown() -> None:
    bronze = _bronze([(1, "Some local label", "5", "mg/L", None, None, None, ".")]).with_columns(
        pl.lit("CRP").alias("LBTESTCD")
    )
    labs, _ = derive_labs(bronze, subjects=SUBJECTS)
    assert labs.select("LBTEST", "LBTESTCD").to_dicts() == [{"LBTEST": "Some local label", "LBTESTCD": "CRP"}]


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match=r"bronze_lb: missing required column\(s\) LBORRESU"):
        derive_labs(_bronze().drop("LBORRESU"), subjects=SUBJECTS)
    with pytest.raises(ValueError, match=r"subjects: missing required column\(s\) RFSTDT"):
        derive_labs(_bronze(), subjects=SUBJECTS.drop("RFSTDT"))


@pytest.mark.parametrize(
    ("tests_yaml", "message"),
    [
        ("  - {code: A, name: A, unit: mg/L, names: [Same]}\n  - {code: B, name: B, unit: mg/L, names: [same]}\n",
         r"name 'same' maps to both A and B"),
        ("  - {code: A, name: A}\n", r"test #1 lacks unit"),
        ("  - {code: A, name: A, unit: mg/L}\n  - {code: A, name: A2, unit: g/L}\n", r"test code A appears twice"),
    ],
)
def test_broken_mappings_are_refused_naming_the_file(tmp_path: Path, tests_yaml: str, message: str) -> None:
    mapping = tmp_path / "broken.yaml"
    mapping.write_text(f'version: "x"\ndomain: LB\ntests:\n{tests_yaml}', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"broken\.yaml: {message}"):
        load_test_mapping(mapping)


def test_a_standard_unit_pint_cannot_read_is_refused(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text('version: "v9"\ndomain: LB\ntests:\n  - {code: X, name: X, unit: bogons/L}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"mapping v9: standard unit of X: unknown unit 'bogons/L'"):
        MeasurementStandards(load_test_mapping(mapping), default_standards("LB").units)
