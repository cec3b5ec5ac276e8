"""The dataset specification written with the marts: ADaM names, labels, lengths, codelists."""
from __future__ import annotations

import polars as pl
import pytest

from bench.marts import make_silver_frames
from trialake.config import load_trial_config
from trialake.dictionary import load_descriptions
from trialake.marts.define import build_define, load_adam_spec
from trialake.pipeline.gold import blind_gold, derive_gold


@pytest.fixture(scope="module")
def gold() -> dict[str, pl.DataFrame]:
    return derive_gold(make_silver_frames(20, seed=2), load_trial_config())


def test_every_adam_variable_follows_the_ig(gold: dict[str, pl.DataFrame]) -> None:
    define = build_define({f"gold/{n}": f for n, f in gold.items()}, load_descriptions(), study_id="ST", version="t")
    adam = [d for d in define["datasets"] if d["class"] in ("SUBJECT LEVEL ANALYSIS DATASET", "BASIC DATA STRUCTURE",
                                                              "OCCURRENCE DATA STRUCTURE")]
    assert [d["name"] for d in adam] == ["ADSL", "ADCT", "ADFT", "ADLB", "ADAE"]
    for dataset in adam:
        assert len(dataset["name"]) <= 8 and len(dataset["label"]) <= 40
        for variable in dataset["variables"]:
            if variable["adam"]:
                assert len(variable["name"]) <= 8 and variable["name"].isupper(), variable
                assert 0 < len(variable["label"]) <= 40, variable
                assert variable["derivation"], f"{dataset['name']}.{variable['name']} has no derivation"
                assert variable["length"] is None or variable["length"] <= 200
    adsl = {v["name"]: v for v in adam[0]["variables"]}
    for name in ("SUBJID", "RACE", "ETHNIC", "AGEGR1", "TRT01PN", "TRT01AN", "RANDDT", "TRTDURD", "EOSSTT", "DCSREAS",
                 "DTHFL", "DTHDT", "PPROTFL"):
        assert name in adsl, name
    assert adsl["TRTSDT"]["type"] == "date" and adsl["AGE"]["type"] == "integer" and adsl["SUBJID"]["type"] == "text"
    bds = {v["name"] for v in adam[1]["variables"]}
    assert {"PARAMN", "TRTA", "AVALC", "ONTRTFL", "SRCDOM", "SRCSEQ"} <= bds
    adae = {v["name"] for v in adam[4]["variables"]}
    assert {"AOCCPIFL", "TRTA", "AESEQ", "ASTDTF", "AOCCFL", "AOCCSFL", "AOCCPFL"} <= adae and "AOCPIFL" not in adae
    assert {"ATOXGR", "BTOXGR"} <= {v["name"] for v in adam[3]["variables"]}
    codelists = {c["name"]: c["terms"] for c in define["codelists"]}
    assert codelists["NY"] == ["N", "Y"] and codelists["TRT"] == ["Placebo", "UC-MSC"]
    assert set(codelists["PARAMCD"]) >= {"LESPCT", "SIXMW"}


def test_a_blinded_specification_names_no_arm(gold: dict[str, pl.DataFrame]) -> None:
    blinded = blind_gold(gold, load_trial_config())
    define = build_define({f"gold/{n}": f for n, f in blinded.items()}, load_descriptions(), study_id="ST", version="t")
    text = str(define)
    assert "UC-MSC" not in text and "Placebo" not in text and "UCMSC" not in text and "PBO" not in text
    names = {v["name"] for d in define["datasets"] for v in d["variables"]}
    assert not names & {"ARM", "ARMCD", "TRT01P", "TRT01A", "TRTP", "TRTA"}
    assert "TRT" not in {c["name"] for c in define["codelists"]}


def test_an_unknown_adam_variable_is_refused(gold: dict[str, pl.DataFrame]) -> None:
    with pytest.raises(ValueError, match="gold/adsl: NEWVAR has no label"):
        build_define({"gold/adsl": gold["adsl"].with_columns(NEWVAR=pl.lit(1))}, load_descriptions(), study_id="ST", version="t")
    with pytest.raises(ValueError, match="not a valid ADaM variable name"):
        spec = load_adam_spec()
        spec["variables"]["TOOLONGNAME"] = {"label": "x"}
        try:
            build_define({"gold/adsl": gold["adsl"].with_columns(TOOLONGNAME=pl.lit(1))}, load_descriptions(),
                         study_id="ST", version="t")
        finally:
            del spec["variables"]["TOOLONGNAME"]
