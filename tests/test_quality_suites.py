"""Every suite in expectations/ passes on a clean frame built to tables.md, and every expectation
fails, alone (or with the ones named here), when the data is broken in exactly its way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from trialake.quality import SuiteSpec, load_suites, validate_table
from trialake.quality.spec import ExpectationSpec, LookupDerivation, ScaledDerivation, StudyDayDerivation, parse_suite
from trialake.clinical import derive_standard_lookups
from trialake.config.trial import LabsConfig
from trialake.pipeline.params import measurement_standards

PACKAGED_STANDARDS = derive_standard_lookups(measurement_standards(LabsConfig()))

EXPECTATIONS_DIR = Path(__file__).resolve().parents[1] / "expectations"

CONSENT = dt.date(2020, 2, 1)
FIRST_DOSE = dt.date(2020, 2, 3)
LAST_DOSE = dt.date(2020, 2, 9)
SHA_A, SHA_B = "a" * 64, "b" * 64


def day(n: int) -> dt.date:
    """Date of study day n (day 1 = first dose, no day 0): worked out by hand, not by the library."""
    return FIRST_DOSE + dt.timedelta(days=n - 1 if n > 0 else n)


def lineage(n: int, sha: str = SHA_A) -> dict[str, list]:
    return {"source_sha256": [sha] * n, "source_row": list(range(1, n + 1)), "run_id": ["r0"] * n}


def frame(data: dict[str, list], **schema: pl.DataType) -> pl.DataFrame:
    return pl.DataFrame(data, schema_overrides=schema)


def bds(paramcd: list[str], aval: list[float], extra: dict[str, list] | None = None) -> pl.DataFrame:
    """BDS rows: S1/S2 baselines, S1 Day 28 (analysed), S2 earlier non-selected pre-dose scan."""
    base = {
        "USUBJID": ["S1", "S2", "S1", "S2"],
        "PARAMCD": paramcd,
        "PARAM": [f"{p} param" for p in paramcd],
        "AVAL": aval,
        "ADT": [day(-1), day(-1), day(28), day(-3)],
        "ADY": [-1, -1, 28, -3],
        "AVISIT": ["Baseline", "Baseline", "Day 28", "Baseline"],
        "AVISITN": [0.0, 0.0, 28.0, 0.0],
        "ABLFL": ["Y", "Y", None, None],
        "BASE": [aval[0], aval[1], aval[0], aval[1]],
        "CHG": [0.0, 0.0, aval[2] - aval[0], None],
        "PCHG": [0.0, 0.0, 100 * (aval[2] - aval[0]) / aval[0], None],
        "ANL01FL": ["Y", "Y", "Y", None],
        "TRTP": ["UC-MSC", "Placebo", "UC-MSC", "Placebo"],
        **(extra or {}),
    }
    return frame(base, ADY=pl.Int64)


def clean_tables() -> dict[str, pl.DataFrame]:
    """Small mutually consistent tables (2 subjects, first dose 2020-02-03) per tables.md."""
    subjects = frame(
        {
            "USUBJID": ["S1", "S2"], "STUDYID": ["ST1"] * 2, "SITEID": ["01", "02"], "SEX": ["M", "F"],
            "AGE": [45, 60], "AGEU": ["YEARS"] * 2, "ARMCD": ["UCMSC", "PBO"], "ARM": ["UC-MSC", "Placebo"],
            "ACTARMCD": ["UCMSC", "PBO"], "ACTARM": ["UC-MSC", "Placebo"], "RFICDT": [CONSENT] * 2,
            "RFSTDT": [FIRST_DOSE] * 2, "RFENDT": [LAST_DOSE] * 2, **lineage(2),
        },
        AGE=pl.Int64,
    )
    clinical = {
        f"bronze/{dom}": frame({"USUBJID": ["S1", "S2"], "STUDYID": ["ST1"] * 2, "DOMAIN": [dom.upper()] * 2, **lineage(2)})
        for dom in ("dm", "ex", "sv", "lb", "ft", "re", "ae")
    }
    tables = {
        **clinical,
        "config/arms": frame({"ARMCD": ["UCMSC", "PBO"], "ARM": ["UC-MSC", "Placebo"]}),
        "config/visits": frame({"AVISIT": ["Baseline", "Day 10", "Day 28"]}),
        "silver/subjects": subjects,
        "bronze/dicom_instances": frame(
            {"USUBJID": ["S1", "S1"], "series_id": ["2.25.11"] * 2, "source_sha256": ["e" * 64, "f" * 64], "run_id": ["r0"] * 2}
        ),
        "silver/exposure": frame(
            {
                "USUBJID": ["S1", "S2", "S1"], "EXTRT": ["UC-MSC", "Placebo", "UC-MSC"], "EXDOSE": [40.0, 40.0, 40.0],
                "EXDOSU": ["10^6 cells"] * 3, "EXSTDT": [day(1), day(1), day(4)], "EXSTDY": [1, 1, 4], **lineage(3),
            },
            EXSTDY=pl.Int64,
        ),
        "silver/visits": frame(
            {
                "USUBJID": ["S1", "S2", "S1"], "VISITNUM": [1.0, 1.0, 2.0], "VISIT": ["Baseline", "Baseline", "Day 10"],
                "SVSTDT": [day(-1), day(-1), day(10)], "SVSTDY": [-1, -1, 10], **lineage(3),
            },
            SVSTDY=pl.Int64,
        ),
        "silver/labs": frame(
            {
                "USUBJID": ["S1", "S2", "S1", "S1"],
                "LBTEST": ["C-reactive protein", "CRP", "Haemoglobin", "Interleukin 8"],
                "LBTESTCD": ["CRP", "CRP", "HGB", "IL8"], "LBLOINC": [None] * 4,
                "LBORRES": ["12", "3", "13", "5"], "LBORRESU": ["mg/L", "mg/L", "g/dL", "ng/L"],
                "LBORNRLO": ["0", "0", "12", None], "LBORNRHI": ["10", "10", "16", None],
                "LBSTRESC": ["12", "3", "130", "5"], "LBSTRESN": [12.0, 3.0, 130.0, 5.0],
                "LBSTRESU": ["mg/L", "mg/L", "g/L", "ng/L"], "LBSTNRLO": [0.0, 0.0, 120.0, None],
                "LBSTNRHI": [10.0, 10.0, 160.0, None], "LBNRIND": ["HIGH", "NORMAL", "NORMAL", None],
                "LBDT": [day(-1), day(-1), day(10), day(10)], "LBDY": [-1, -1, 10, 10], "VISIT": [None] * 4,
                **lineage(4),
            },
            LBDY=pl.Int64, LBLOINC=pl.String, VISIT=pl.String,
        ),
        "silver/sixmwt": frame(
            {
                "USUBJID": ["S1", "S2", "S1"], "FTTESTCD": ["SIXMW"] * 3, "FTSTRESN": [300.0, 350.0, 400.0],
                "FTSTRESU": ["m"] * 3, "FTDT": [day(-1), day(-1), day(28)], "FTDY": [-1, -1, 28],
                "VISIT": ["Baseline", "Baseline", "Day 28"], **lineage(3),
            },
            FTDY=pl.Int64,
        ),
        "silver/lung_function": frame(
            {
                "USUBJID": ["S1", "S2", "S1"], "RETESTCD": ["FVC", "DLCO", "MVC"],
                "RETEST": ["Forced vital capacity", "Diffusing capacity", "Maximum vital capacity"],
                "RESTRESN": [3.0, 6.0, 3.0], "RESTRESU": ["L", "mmol/min/kPa", "L"],
                "REDT": [day(-1), day(-1), day(28)], "REDY": [-1, -1, 28], "VISIT": ["Baseline", "Baseline", "Day 28"],
                **lineage(3),
            },
            REDY=pl.Int64,
        ),
        "silver/adverse_events": frame(
            {
                "USUBJID": ["S1", "S2"], "AEDECOD": ["Headache", "Pyrexia"], "AEBODSYS": [None, None],
                "AESEV": ["MILD", "MODERATE"], "AESER": ["N", "Y"], "AEREL": ["NOT RELATED", "POSSIBLE"],
                "AESTDT": [day(2), day(2)], "AESTDY": [2, 2], "AEENDT": [day(3), None], **lineage(2),
            },
            AESTDY=pl.Int64, AEBODSYS=pl.String, AEENDT=pl.Date,
        ),
        "silver/ct_series": frame(
            {
                "USUBJID": ["S1", "S2", "S1"], "study_id": ["2.25.1", "2.25.2", "2.25.3"],
                "series_id": ["2.25.11", "2.25.21", "2.25.12"], "modality": ["CT"] * 3,
                "n_instances": [100, 120, 10], "rows": [512] * 3, "columns": [512] * 3,
                "pixel_spacing_mm": [0.7, 0.8, 0.7], "pixel_spacing_col_mm": [0.7, 0.8, 0.7],
                "slice_spacing_mm": [1.0, 1.25, 5.0], "slice_thickness_mm": [1.0, 1.25, 5.0],
                "orientation": ["axial"] * 3, "gantry_tilt_deg": [0.0] * 3, "kvp": [120.0] * 3,
                "convolution_kernel": ["B70f"] * 3, "acquisition_date": [day(-1), day(-1), day(28)],
                "ADY": [-1, -1, 28], "status": ["usable", "usable", "unusable"],
                "qc_reasons": ["", "", "too few slices"], "kernel_class": ["sharp"] * 3,
                "volumetry_selected": [True, True, False], "source_sha256": ["e" * 64, "1" * 64, "2" * 64],
                "run_id": ["r0"] * 3,
            },
            n_instances=pl.Int64, rows=pl.Int64, columns=pl.Int64, ADY=pl.Int64,
        ),
        "silver/ct_volumetry": frame(
            {
                "USUBJID": ["S1", "S2", "S1"], "series_id": ["2.25.11", "2.25.21", "2.25.12"],
                "ADT": [day(-1), day(-1), day(28)], "ADY": [-1, -1, 28],
                "status": ["measured", "measured-with-flags", "failed"],
                "reason": [None, "pleural effusion of 60 mL (not lung)", "too few slices"],
                "qc_flags": [None, "effusion", None], "effusion_volume_ml": [0.0, 60.0, None],
                "pneumothorax_volume_ml": [0.0, 0.0, None], "noise_hu": [15.0, 80.0, None],
                "smoothing_mm": [0.0, 0.6, None], "convolution_kernel": ["B30f", "B70f", None],
                "kernel_class": ["soft", "sharp", None], "right_lung_share": [0.53, 0.52, None],
                "airway_found": [True, True, None], "put_back_pct": [3.0, 8.0, None],
                "fov_margin_mm": [40.0, 35.0, None], "scan_margin_mm": [20.0, 15.0, None],
                "gantry_tilt_deg": [0.0, 0.0, None], "check_method": [None, None, None],
                "check_lung_volume_ml": [None, None, None], "disagreement_pct": [None, None, None],
                "lung_volume_ml": [4000.0, 5000.0, None], "lesion_volume_ml": [800.0, 500.0, None],
                "ggo_volume_ml": [600.0, 400.0, None], "solid_volume_ml": [200.0, 100.0, None],
                "lesion_pct": [20.0, 10.0, None], "ggo_pct": [15.0, 8.0, None], "solid_pct": [5.0, 2.0, None],
                "left_lung_volume_ml": [1900.0, 2400.0, None], "right_lung_volume_ml": [2100.0, 2600.0, None],
                "mean_lung_density_hu": [-800.0, -820.0, None], "method": ["classical"] * 3,
                "method_version": ["1.0"] * 3, "params_hash": ["h1"] * 3, "source_sha256": ["e" * 64, "1" * 64, "2" * 64],
                "run_id": ["r0"] * 3,
            },
            ADY=pl.Int64, check_method=pl.String, check_lung_volume_ml=pl.Float64, disagreement_pct=pl.Float64,
            qc_flags=pl.String, convolution_kernel=pl.String, kernel_class=pl.String,
        ),
        "silver/ct_dicom_results": frame(
            {
                "USUBJID": ["S1", "S2", "S2"], "series_id": ["2.25.11", "2.25.21", "2.25.21"],
                "params_hash": ["h1", "h1", "h2"], "status": ["written", "written", "failed"],
                "reason": [None, None, "DICOM SEG/SR not built (ValueError: grid)"],
                "seg_object": ["silver/ct_seg/S1/2.25.11_h1.dcm", "silver/ct_seg/S2/2.25.21_h1.dcm", None],
                "sr_object": ["silver/ct_sr/S1/2.25.11_h1.dcm", "silver/ct_sr/S2/2.25.21_h1.dcm", None],
                "seg_series_uid": ["2.25.5", "2.25.6", None], "seg_sop_uid": ["2.25.51", "2.25.61", None],
                "sr_series_uid": ["2.25.7", "2.25.8", None], "sr_sop_uid": ["2.25.71", "2.25.81", None],
                "n_seg_frames": [90, 110, None], "run_id": ["r0"] * 3, "pushed_to": [None] * 3, "push_run_id": [None] * 3,
            },
            n_seg_frames=pl.Int64, reason=pl.String, seg_object=pl.String, sr_object=pl.String, seg_series_uid=pl.String,
            seg_sop_uid=pl.String, sr_series_uid=pl.String, sr_sop_uid=pl.String, pushed_to=pl.String,
            push_run_id=pl.String,
        ),
        "silver/rejections": frame(
            {
                "source_sha256": ["c" * 64, "d" * 64], "source_row": [3, None], "stage": ["clinical_lb", "ingest_dicom"],
                "reason": ["unit not recognised for LBTESTCD CRP", "not a DICOM file"], "run_id": ["r0"] * 2,
            },
            source_row=pl.Int64,
        ),
        "gold/adsl": frame(
            {
                "USUBJID": ["S1", "S2"], "STUDYID": ["ST1"] * 2, "SITEID": ["01", "02"], "AGE": [45, 60],
                "SEX": ["M", "F"], "ARM": ["UC-MSC", "Placebo"], "ARMCD": ["UCMSC", "PBO"],
                "TRT01P": ["UC-MSC", "Placebo"], "TRT01A": ["UC-MSC", "Placebo"], "TRTSDT": [FIRST_DOSE] * 2,
                "TRTEDT": [LAST_DOSE] * 2, "RANDFL": ["Y"] * 2, "ITTFL": ["Y"] * 2, "SAFFL": ["Y"] * 2,
                "FASFL": ["Y"] * 2, "PPROTFL": ["Y", "N"], "SUBJID": ["1001", "2001"], "AGEGR1": ["<65", "<65"],
                "TRT01PN": [1, 2], "RANDDT": [CONSENT] * 2, "TRTDURD": [7, 7], "EOSSTT": ["COMPLETED", "DISCONTINUED"],
                "DTHFL": [None, "Y"], "DTHDT": [None, day(20)],
            },
            AGE=pl.Int64, TRT01PN=pl.Int64, TRTDURD=pl.Int64, DTHFL=pl.String, DTHDT=pl.Date,
        ),
        "gold/adct": bds(["LESPCT", "LESPCT", "LESPCT", "LESPCT"], [20.0, 10.0, 12.0, 11.0],
                         {"series_id": ["2.25.11", "2.25.21", "2.25.13", "2.25.20"]}),
        "gold/adlb": bds(["CRP"] * 4, [12.0, 3.0, 5.0, 4.0],
                         {"ANRIND": ["HIGH", "NORMAL", "NORMAL", "NORMAL"], "BNRIND": ["HIGH", "NORMAL", "HIGH", "NORMAL"],
                          "ATOXGR": ["1", "0", "0", "0"], "BTOXGR": ["1", "0", "1", "0"]}),
        "gold/adft": bds(["SIXMW"] * 4, [300.0, 350.0, 400.0, 340.0]),
        "gold/adae": frame(
            {
                "USUBJID": ["S1", "S2"], "AEDECOD": ["Headache", "Pyrexia"], "AESEV": ["MILD", "MODERATE"],
                "AESER": ["N", "Y"], "AEREL": ["NOT RELATED", "POSSIBLE"], "AESEQ": [1, 1], "ASTDT": [day(2), day(-1)],
                "ASTDTF": ["D", None], "ASTDY": [2, -1], "AREL": ["NOT RELATED", "RELATED"], "TRTEMFL": ["Y", "N"],
                "AOCCFL": ["Y", None], "AOCCPIFL": ["Y", None],
            },
            ASTDY=pl.Int64, AESEQ=pl.Int64, ASTDTF=pl.String, AOCCFL=pl.String, AOCCPIFL=pl.String,
        ),
        "gold/endpoints": frame(
            {
                "PARAMCD": ["LESPCT", "LESPCT"], "PARAM": ["Lesion %"] * 2, "AVISIT": ["Day 28"] * 2,
                "AVISITN": [28.0] * 2, "AVAR": ["CHG", "PCHG"], "trt_arm": ["UC-MSC"] * 2, "ctl_arm": ["Placebo"] * 2,
                "n_trt": [65, 65], "n_ctl": [35, 35], "median_trt": [-8.0, -40.0], "q1_trt": [-12.0, -60.0],
                "q3_trt": [-2.0, -10.0], "median_ctl": [2.0, 10.0], "q1_ctl": [-1.0, -5.0], "q3_ctl": [6.0, 30.0],
                "estimate": [-13.31, -30.5], "ci_low": [-29.14, -55.0], "ci_high": [2.13, 1.0],
                "conf_level": [0.95, 0.95], "p_value": [0.08, 0.06], "method": ["Hodges-Lehmann"] * 2,
                "missing_data": ["complete cases"] * 2, "population": ["FASFL"] * 2, "primary": ["Y", None],
                "hierarchy_rank": [1, None], "hierarchy_decision": ["not rejected at alpha 0.05: testing stops", None],
            },
            n_trt=pl.Int64, n_ctl=pl.Int64, primary=pl.String, hierarchy_rank=pl.Int64,
        ),
        "gold/endpoints_sensitivity": frame(
            {"PARAMCD": ["LESPCT", "SIXMW"], "AVISIT": ["Day 28"] * 2, "AVAR": ["CHG"] * 2, "better": ["lower", "higher"],
             "n_trt": [65, 64], "n_ctl": [35, 35], "p_value": [0.1, 0.2]},
        ),
        "silver/disposition": frame(
            {"USUBJID": ["S1", "S1", "S2"], "DSSEQ": [1, 2, 1], "DSDECOD": ["RANDOMIZED", "COMPLETED", "DEATH"],
             "DSCAT": ["PROTOCOL MILESTONE", "DISPOSITION EVENT", "DISPOSITION EVENT"],
             "DSSTDTC": ["2020-02-01", "2020-03-05", "2020-02"], **lineage(3)},
            DSSEQ=pl.Int64,
        ),
    }
    return tables


@pytest.fixture(scope="session")
def suites() -> dict[str, SuiteSpec]:
    return load_suites(EXPECTATIONS_DIR, standards=PACKAGED_STANDARDS)


def run(suite: SuiteSpec, tables: dict[str, pl.DataFrame]) -> set[str]:
    outcome = validate_table(
        suite.table, tables[suite.table], suite,
        context_tables={t: tables[t] for t in suite.context_tables}, run_id="test",
    )
    return set(outcome.failed_errors) | set(outcome.failed_warnings)


# ---------------------------------------------------------------------------------------------
# Breakers: change the clean data in exactly the way an expectation forbids.

Tables = dict[str, pl.DataFrame]


def set_cell(tables: Tables, table: str, row: int, column: str, value: object) -> None:
    df = tables[table]
    dtype = df.schema[column]
    values = df[column].to_list()
    values[row] = value
    tables[table] = df.with_columns(pl.Series(column, values, dtype=dtype))


def matching_rows(df: pl.DataFrame, exp: ExpectationSpec) -> list[int]:
    """Row numbers satisfying the expectation's ``when`` condition."""
    keep = pl.lit(True)
    for col, value in exp.when.items():
        keep &= pl.col(col).is_in(list(value)) if isinstance(value, tuple) else pl.col(col) == value
    return df.with_row_index("i").filter(keep)["i"].to_list()


def lookups(suite: SuiteSpec) -> dict[str, LookupDerivation]:
    return {d.name: d for d in suite.derive if isinstance(d, LookupDerivation)}


def derivation_inputs(suite: SuiteSpec) -> set[str]:
    inputs = {c for d in suite.derive if isinstance(d, StudyDayDerivation) for c in (d.date, d.reference)}
    return inputs | {d.column for d in suite.derive if isinstance(d, ScaledDerivation)}


def context_alias(suite: SuiteSpec, alias: str) -> tuple[str, str, str] | None:
    """(context table, join column, source column) for a joined alias."""
    for join in suite.context:
        for src, name in join.columns.items():
            if name == alias:
                return join.table, join.by[0], src
    return None


def plus_one(value: object) -> object:
    return value + dt.timedelta(days=1) if isinstance(value, dt.date) else value + 1


def minus_one(value: object) -> object:
    return value - dt.timedelta(days=1) if isinstance(value, dt.date) else value - 1


def derived_value(suite: SuiteSpec, name: str, df: pl.DataFrame, row: int) -> float | None:
    """Value of a lookup or scaled helper column on ``row`` (None when ``name`` is not one)."""
    for d in suite.derive:
        if d.name == name and isinstance(d, LookupDerivation):
            return d.values.get(df[d.key][row])
        if d.name == name and isinstance(d, ScaledDerivation):
            return df[d.column][row] * d.factor
    return None


def break_pair_greater(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    """Make column_A < column_B on the first row where both are known."""
    df = tables[suite.table]
    a, b = exp.kwargs["column_A"], exp.kwargs["column_B"]

    def known(c: str, i: int) -> bool:
        if c in df.columns:
            return df[c][i] is not None
        return context_alias(suite, c) is not None or derived_value(suite, c, df, i) is not None

    row = next(i for i in range(df.height) if known(a, i) and known(b, i))
    if (ctx := context_alias(suite, b)) is not None:
        ctx_table, key, src = ctx
        idx = tables[ctx_table][key].to_list().index(df[key][row])
        set_cell(tables, ctx_table, idx, src, plus_one(df[a][row]))
    elif (bound := derived_value(suite, b, df, row)) is not None:
        set_cell(tables, suite.table, row, a, bound - 1)
    elif (bound := derived_value(suite, a, df, row)) is not None:
        set_cell(tables, suite.table, row, b, bound + 1)
    elif b in derivation_inputs(suite):
        set_cell(tables, suite.table, row, a, minus_one(df[b][row]))
    else:
        set_cell(tables, suite.table, row, b, plus_one(df[a][row]))


def break_between(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    df = tables[suite.table]
    row = matching_rows(df, exp)[0]
    hi, lo = exp.kwargs.get("max_value"), exp.kwargs.get("min_value")
    value = hi + 1 if hi is not None else lo - 1
    if exp.kwargs.get("strict_min") and hi is None:
        value = lo
    set_cell(tables, suite.table, row, exp.kwargs["column"], value)


def break_compound_unique(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    df = tables[suite.table]
    first, second = matching_rows(df, exp)[:2]
    for col in exp.kwargs["column_list"]:
        set_cell(tables, suite.table, second, col, df[col][first])


def break_unique(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    col = exp.kwargs["column"]
    set_cell(tables, suite.table, 1, col, tables[suite.table][col][0])


def break_not_null(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    set_cell(tables, suite.table, matching_rows(tables[suite.table], exp)[0], exp.kwargs["column"], None)


def break_in_set(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    col = exp.kwargs.get("column") or exp.kwargs["column_B"]
    set_cell(tables, suite.table, matching_rows(tables[suite.table], exp)[0], col, "ZZZ")


def break_not_in_set(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    row = matching_rows(tables[suite.table], exp)[0]
    set_cell(tables, suite.table, row, exp.kwargs["column"], exp.kwargs["value_set"][0])


def break_pair_equal(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    df = tables[suite.table]
    col = exp.kwargs["column_A"]
    value = df[col][0]
    set_cell(tables, suite.table, 0, col, "ZZZ" if isinstance(value, str) else value + 1)


def break_regex(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    set_cell(tables, suite.table, 0, exp.kwargs["column"], "not-a-digest")


def break_schema(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    """Give the least-read schema column another dtype (values kept where the dtype allows)."""
    col = least_read_column(suite)
    df = tables[suite.table]
    wrong = {
        pl.String: pl.int_range(df.height, dtype=pl.Int64),
        pl.Int64: pl.col(col).cast(pl.Float64),
        pl.Float64: pl.col(col).cast(pl.String),
        pl.Date: pl.col(col).cast(pl.Datetime("us")),
    }[df.schema[col]]
    tables[suite.table] = df.with_columns(wrong.alias(col))


def break_row_count(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
    tables[suite.table] = tables[suite.table].head(0)


def least_read_column(suite: SuiteSpec) -> str:
    """The schema column read by the fewest expectations and by no join or derivation."""
    busy = derivation_inputs(suite) | {c for j in suite.context for c in j.by} | {d.key for d in lookups(suite).values()}
    candidates = [c for c in suite.schema if c not in busy]
    return min(candidates, key=lambda c: sum(c in e.columns() for e in suite.expectations if e.name != "schema"))


Breaker = Callable[[SuiteSpec, ExpectationSpec, Tables], None]
BREAKERS: dict[str, Breaker] = {
    "expect_column_pair_values_a_to_be_greater_than_b": break_pair_greater,
    "expect_column_values_to_be_between": break_between,
    "expect_compound_columns_to_be_unique": break_compound_unique,
    "expect_column_values_to_be_unique": break_unique,
    "expect_column_values_to_not_be_null": break_not_null,
    "expect_column_values_to_be_in_set": break_in_set,
    "expect_column_pair_values_to_be_in_set": break_in_set,
    "expect_column_values_to_not_be_in_set": break_not_in_set,
    "expect_column_pair_values_to_be_equal": break_pair_equal,
    "expect_column_values_to_match_regex": break_regex,
    "expect_table_schema_to_match": break_schema,
    "expect_table_row_count_to_be_between": break_row_count,
}


def set_cells(table: str, row: int, **values: object) -> Breaker:
    def breaker(suite: SuiteSpec, exp: ExpectationSpec, tables: Tables) -> None:
        for col, value in values.items():
            set_cell(tables, table, row, col, value)
    return breaker


# Breaks the generic rule would do with side effects on other expectations, done precisely instead.
SPECIAL: dict[tuple[str, str], Breaker] = {
    # a series measured without flags that carries a flag code
    ("silver/ct_volumetry", "measured_without_flags_has_none"): set_cells("silver/ct_volumetry", 0, qc_flags="effusion"),
    # a baseline after first dose: move the date, keep the study day consistent with it
    **{(t, "baseline_on_or_before_first_dose"): set_cells(t, 0, ADT=day(2), ADY=2) for t in ("gold/adct", "gold/adlb", "gold/adft")},
    # a second baseline flag on the earlier (not analysed) scan of the same subject and parameter
    **{(t, "one_baseline_per_subject_and_parameter"): set_cells(t, 3, ABLFL="Y") for t in ("gold/adct", "gold/adlb", "gold/adft")},
    # two analysed records for S1 at Baseline: relabel the Day 28 record
    **{(t, "analysis_record_unique"): set_cells(t, 2, AVISIT="Baseline") for t in ("gold/adct", "gold/adlb", "gold/adft")},
    # implausible spacing with a matching thickness, so the gap check stays quiet
    ("silver/ct_series", "usable_slice_spacing_plausible"): set_cells(
        "silver/ct_series", 0, slice_spacing_mm=21.0, slice_thickness_mm=21.0
    ),
    # treatment-emergent event starting before first dose (date and study day consistent)
    ("gold/adae", "treatment_emergent_on_or_after_first_dose"): set_cells("gold/adae", 0, ASTDT=day(-1), ASTDY=-1),
    # flag values out of their sets on rows whose other flags do not depend on them
    ("gold/adae", "treatment_emergent_flag_values"): set_cells("gold/adae", 1, TRTEMFL="ZZZ"),
    ("gold/adsl", "full_analysis_flag_values"): set_cells("gold/adsl", 1, FASFL="ZZZ"),
    # a per-protocol subject outside the full analysis set
    ("gold/adsl", "per_protocol_within_full_analysis_set"): set_cells("gold/adsl", 0, FASFL="N"),
    # a first occurrence on an event that is not treatment-emergent
    ("gold/adae", "occurrence_flags_only_on_treatment_emergent_events"): set_cells("gold/adae", 0, TRTEMFL="N"),
    # two first occurrences for one subject
    ("gold/adae", "first_occurrence_unique_per_subject"): set_cells("gold/adae", 1, USUBJID="S1", AOCCFL="Y", TRTEMFL="Y",
                                                                    ASTDT=day(3), ASTDY=3),
    # two primary endpoints
    ("gold/endpoints", "one_primary_endpoint_at_most"): set_cells("gold/endpoints", 1, primary="Y"),
    # a treatment number other than 1 or 2
    ("gold/adsl", "planned_treatment_number"): set_cells("gold/adsl", 0, TRT01PN=3),
    # two disposition events for one subject
    ("silver/disposition", "one_disposition_event_per_subject"): set_cells("silver/disposition", 2, USUBJID="S1"),
}


def case_ids(suites: dict[str, SuiteSpec]) -> list[tuple[str, str]]:
    return [(t, e.name) for t, s in sorted(suites.items()) for e in s.expectations]


# Parsed without GX at collection time for the test ids; the fixture loads them through GX once.
_SUITES = {
    s.table: s for s in (parse_suite(p.read_text(encoding="utf-8"), source=p) for p in sorted(EXPECTATIONS_DIR.glob("*.yaml")))
}


@pytest.mark.parametrize("table", sorted(_SUITES))
def test_suite_passes_on_clean_data(table: str, suites: dict[str, SuiteSpec]) -> None:
    assert run(suites[table], clean_tables()) == set()


@pytest.mark.parametrize(("table", "name"), case_ids(_SUITES))
def test_breaking_the_data_fails_exactly_that_expectation(table: str, name: str, suites: dict[str, SuiteSpec]) -> None:
    suite = suites[table]
    exp = suite.expectation(name)
    tables = clean_tables()
    breaker = SPECIAL.get((table, name)) or BREAKERS[exp.type]
    breaker(suite, exp, tables)
    assert run(suite, tables) == {name}


def test_missing_column_fails_schema_and_the_expectations_reading_it(suites: dict[str, SuiteSpec]) -> None:
    suite = suites["silver/labs"]
    tables = clean_tables()
    tables["silver/labs"] = tables["silver/labs"].drop("LBNRIND")
    assert run(suite, tables) == {"schema", "reference_range_indicator_terminology"}


def test_empty_tables_pass_unless_rows_are_required(suites: dict[str, SuiteSpec]) -> None:
    """A night without, say, adverse events is fine; only tables that must have rows say so."""
    clean = clean_tables()
    for table, suite in suites.items():
        failed = run(suite, {**clean, table: clean[table].head(0)})
        required = {e.name for e in suite.expectations if e.type == "expect_table_row_count_to_be_between"}
        assert failed == required, table


def test_every_table_of_tables_md_has_a_suite(suites: dict[str, SuiteSpec]) -> None:
    required = {
        "bronze/dicom_instances", "silver/rejections", "silver/subjects", "silver/exposure", "silver/visits",
        "silver/labs", "silver/sixmwt", "silver/lung_function", "silver/adverse_events", "silver/ct_series",
        "silver/ct_volumetry", "gold/adsl", "gold/adct", "gold/adlb", "gold/adft", "gold/adae", "gold/endpoints",
        "gold/endpoints_sensitivity", "silver/disposition",
    }
    assert required <= set(suites)
