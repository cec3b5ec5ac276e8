"""Every key of the trial configuration is validated, refused when unknown, and read by a stage."""
from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from trialake.config import ConfigError, load_trial_config
from trialake.config.trial import TrialConfig, default_trial_config_path
from trialake.pipeline.clinical import CLINICAL_SILVER
from trialake.pipeline.dicom import CT_SERIES
from trialake.pipeline.gold import GOLD

REPO = Path(__file__).resolve().parents[1]
#: Where the top-level keys that no derived stage's fingerprint covers are read (each tested there).
READ_ELSEWHERE = {
    "version": "load_trial_config (the file format; a changed format is refused)",
    "timezone": "make deploy: the nightly schedule's time zone (tests/test_infra.py)",
    "nightly_cron": "make deploy: the nightly schedule (tests/test_infra.py)",
    "deidentification": "rules_state: the landing area is de-identified again (tests/test_deid_config.py)",
    "pacs": "read_settings: the PACS source and research PACS (tests/test_pacs_orthanc.py)",
}
#: Keys read where they are defined (validators and properties of the configuration itself).
DEFINITION_FILES = {REPO / "src/trialake/config/trial.py", REPO / "src/trialake/imaging/params.py"}


def _leaves(model: type, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, field name) of every leaf key of a configuration model."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        fields = {name: info.annotation for name, info in model.model_fields.items()}
    else:
        fields = {f.name: f.type for f in dataclasses.fields(model)}
    for name, annotation in fields.items():
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = [a for a in inner if (issubclass(a, BaseModel) or dataclasses.is_dataclass(a))]
        if isinstance(annotation, type) and (issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation)):
            nested = [annotation]
        if nested:
            yield from _leaves(nested[0], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", name


def _attributes_read_outside_the_definitions() -> set[str]:
    names: set[str] = set()
    for folder in ("src/trialake", "flows", "tasks"):
        for path in (REPO / folder).rglob("*.py"):
            if path in DEFINITION_FILES:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
            names |= {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    return names | set(re.findall(r"\.(\w+)", (REPO / "Makefile").read_text()))  # make deploy reads the schedule


def test_every_key_is_read_by_the_code() -> None:
    """Each leaf key (visits.low_day, ct.lesion_high_hu, endpoints.hierarchy.alpha ...) is read
    somewhere outside the configuration's own definition (an attribute or a key of a dump, or by
    the Makefile's deploy target)."""
    read = _attributes_read_outside_the_definitions()
    unread = sorted(path for path, name in _leaves(TrialConfig) if name not in read)
    assert not unread, f"configuration keys no code reads: {unread}"


def test_every_section_reaches_a_stage_fingerprint_or_a_named_reader() -> None:
    """A changed section re-derives the stages that read it (their fingerprints cover it), or is
    read at the edge named in READ_ELSEWHERE; no section is silently ignored."""
    covered = set(CLINICAL_SILVER.config) | set(CT_SERIES.config) | set(GOLD.config)
    sections = set(TrialConfig.model_fields)
    assert sections == covered | set(READ_ELSEWHERE), (sections - covered - set(READ_ELSEWHERE), covered - sections)
    assert not covered & set(READ_ELSEWHERE)


@pytest.mark.parametrize("path", sorted({p for p, _ in _leaves(TrialConfig) if "." in p}))
def test_an_unknown_key_next_to_any_key_stops_the_run_naming_it(path: str, tmp_path: Path) -> None:
    """``<section>.surplus: 1`` beside every nested key is refused with the file and the key."""
    import yaml

    raw = yaml.safe_load(default_trial_config_path().read_text(encoding="utf-8"))
    *parents, _ = path.split(".")
    node = raw
    for part in parents:
        if node.get(part) is None:  # an optional section left out: give it with only the surplus key
            node[part] = {}
        node = node[part]
        if isinstance(node, list):
            node = node[0]
    node["surplus_key"] = 1
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_trial_config(config)
    assert str(config) in str(error.value) and "surplus_key" in str(error.value)


def test_a_bad_schedule_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(default_trial_config_path().read_text(encoding="utf-8").replace('nightly_cron: "0 2 * * *"',
                                                                                    'nightly_cron: "at two"'))
    with pytest.raises(ConfigError, match=r"trial.yaml: nightly_cron"):
        load_trial_config(config)
