"""Trial configuration and run settings."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trialake.config import ConfigError, default_trial_config_path, load_trial_config, read_settings


def _write_variant(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(default_trial_config_path().read_text())
    change(raw)
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_reference_trial_is_the_default() -> None:
    trial = load_trial_config()
    assert trial.study_id == "NCT04288102"
    assert (trial.arms.treatment.arm, trial.arms.control.arm) == ("UC-MSC", "Placebo")
    assert [(v.name, v.low_day, v.high_day) for v in trial.visits] == [
        ("Baseline", -30, 1),
        ("Day 10", 7, 13),
        ("Day 28", 21, 35),
    ]
    assert trial.baseline_visit.name == "Baseline"
    ddimer = trial.labs.basis_conversions[0]
    assert (ddimer.test, ddimer.from_basis, ddimer.to_basis, ddimer.factor) == ("DDIMER", "DDU", "FEU", 2.0)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda raw: raw["arms"].pop("control"), "arms.control: Field required"),
        (lambda raw: raw["ct"].update(solid_split_hu="soft"), "ct.solid_split_hu"),
        (lambda raw: raw.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda raw: raw["visits"][1].update(high_day=22), "overlap"),
        (lambda raw: raw["visits"][2].update(target_day=50), "visits.2"),
        (lambda raw: raw["endpoints"].update(estimator="t_test"), "endpoints.estimator: Input should be 'hodges_lehmann'"),
        (lambda raw: raw["endpoints"].update(population="EFFFL"), "endpoints.population"),
        (lambda raw: raw["endpoints"]["populations"].update(SIXMW="XXFL"), "endpoints.populations.SIXMW"),
        (lambda raw: raw["endpoints"]["primary"].update(avar="RATIO"), "endpoints.primary.avar"),
        (lambda raw: raw["endpoints"]["hierarchy"]["order"][1].update(avisit="Day 99"), "'Day 99' is not a post-baseline visit"),
        (lambda raw: raw["endpoints"]["hierarchy"]["order"][2].update(avisit="Baseline"), "'Baseline' is not a post-baseline visit"),
        (lambda raw: raw["endpoints"].update(descriptive_only=["LUNGVOLX"]), "endpoints.descriptive_only: unknown parameter(s) ['LUNGVOLX']"),
        (lambda raw: raw["endpoints"].update(descriptive_only=["LESPCT"]), "LESPCT is descriptive_only"),
        (lambda raw: raw["endpoints"]["hierarchy"]["order"].reverse(), "must start with the primary endpoint"),
        (lambda raw: raw["endpoints"]["hierarchy"].update(alpha=1.5), "endpoints.hierarchy.alpha"),
        (lambda raw: raw["endpoints"]["better"].pop("SIXMW"), "direction of improvement of ['SIXMW']"),
        (lambda raw: raw["endpoints"]["missing_data"].update(primary="locf"), "endpoints.missing_data.primary"),
        (lambda raw: raw["endpoints"].update(outside_window="stretch"), "endpoints.outside_window"),
        (lambda raw: raw.update(blinding="partly"), "blinding: Input should be 'blinded' or 'unblinded'"),
        (lambda raw: raw["adam"].update(age_groups=[65, 18]), "age_groups must be distinct and increasing"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, change, expected: str) -> None:
    path = _write_variant(tmp_path, change)
    with pytest.raises(ConfigError) as caught:
        load_trial_config(path)
    message = str(caught.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_analysis_plan_is_read_from_the_configuration() -> None:
    trial = load_trial_config()
    sap = trial.endpoints
    assert (sap.primary.paramcd, sap.primary.avisit, sap.primary.avar) == ("LESPCT", "Day 28", "CHG")
    assert [t.paramcd for t in sap.hierarchy.order] == ["LESPCT", "SOLPCT", "SIXMW"]
    assert sap.hierarchy.alpha == 0.05 and sap.descriptive_only == ("LUNGVOL",)
    assert sap.estimator == "hodges_lehmann" and sap.population == "FASFL"
    assert (sap.missing_data.primary, sap.missing_data.sensitivity) == ("complete_case", "worst_rank")
    assert trial.blinding == "unblinded"  # the reference trial is completed and published


def test_a_new_trial_starts_blinded(tmp_path: Path) -> None:
    path = _write_variant(tmp_path, lambda raw: raw.pop("blinding"))
    trial = load_trial_config(path)
    assert trial.blinding == "blinded" and trial.blinded


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_trial_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("arms: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_trial_config(bad)


def test_settings_read_the_standard_aws_variables(tmp_path: Path) -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-central-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "HOME": "/nowhere",
    }
    settings = read_settings(landing="s3://bucket/landing/", lake=str(tmp_path / "lake"), environ=environ)
    assert settings.landing == "s3://bucket/landing"
    assert settings.lake == str((tmp_path / "lake").resolve())
    assert settings.storage_options == {
        "key": "id",
        "secret": "secret",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-central-1"},
    }
    assert read_settings(landing="a", lake="b", environ={}).storage_options == {}
