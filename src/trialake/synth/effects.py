"""Truth about endpoints: per-subject analysis values and the true (population) treatment effects."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np

from trialake.synth.clinical import Pair
from trialake.synth.formats import Cell
from trialake.synth.params import LesionModel, OutcomeModel, SynthParams

_Z = np.linspace(-8.0, 8.0, 16001)
_W = np.exp(-0.5 * _Z**2) / np.sqrt(2.0 * np.pi) * (_Z[1] - _Z[0])


def compute_clipped_normal_mean(mean: float, sd: float, low: float, high: float) -> float:
    """E[clip(X, low, high)] for X ~ Normal(mean, sd) (numerical quadrature)."""
    return float(np.sum(np.clip(mean + sd * _Z, low, high) * _W))


def compute_lesion_effects(model: LesionModel) -> dict[str, dict[str, float]]:
    """Expected day-28 change per arm: lesion% CHG (points) and solid% PCHG (percent).

    With independent baseline burden L0 and solid share s0, E[GGO0] = E[L0] (1 - E[s0]) and
    E[solid0] = E[L0] E[s0]; at day 28 (g = 1) the change is -(GGO0 a + solid0 b) points and the
    solid percent change is -100 b, with a, b the clipped resolution fractions.
    """
    mean_lesion = (model.lesion_low_pct + model.lesion_high_pct) / 2.0
    mean_share = (model.share_low + model.share_high) / 2.0
    out: dict[str, dict[str, float]] = {"LESPCT": {}, "SOLPCT": {}}
    for arm, ggo_mean, solid_mean in (("treated", model.ggo_resolution_treated, model.solid_resolution_treated),
                                      ("control", model.ggo_resolution_control, model.solid_resolution_control)):
        a = compute_clipped_normal_mean(ggo_mean, model.resolution_sd, 0.0, model.max_resolution)
        b = compute_clipped_normal_mean(solid_mean, model.resolution_sd, 0.0, model.max_resolution)
        out["LESPCT"][arm] = -(mean_lesion * (1.0 - mean_share) * a + mean_lesion * mean_share * b)
        out["SOLPCT"][arm] = -100.0 * b
    return out


def _outcome_effect(model: OutcomeModel) -> dict[str, float]:
    return {"treated": model.control_change + model.effect, "control": model.control_change}


def build_population_effects(params: SynthParams) -> dict[str, dict[str, Cell]]:
    """True day-28 effects (treated minus control) implied by the generative model."""
    lesion = compute_lesion_effects(params.lesion)
    means = {**lesion, "SIXMW": _outcome_effect(params.sixmw), "FVC": _outcome_effect(params.fvc),
             "MVC": _outcome_effect(params.mvc), "DLCO": _outcome_effect(params.dlco)}
    avar = {"LESPCT": ("CHG", "percentage points"), "SOLPCT": ("PCHG", "percent"), "SIXMW": ("CHG", "m"),
            "FVC": ("CHG", "L"), "MVC": ("CHG", "L"), "DLCO": ("CHG", "mmol/min/kPa")}
    return {
        paramcd: {"AVISIT": "Day 28", "AVAR": avar[paramcd][0], "unit": avar[paramcd][1],
                  "mean_treated": m["treated"], "mean_control": m["control"],
                  "difference": m["treated"] - m["control"]}
        for paramcd, m in means.items()
    }


def build_endpoint_rows(
    pairs: Sequence[Pair], ct_rows: Sequence[Mapping[str, Cell]], measurement_rows: Sequence[Mapping[str, Cell]],
    params: SynthParams, ct_params: Mapping[str, tuple[str, str]],
) -> list[dict[str, Cell]]:
    """Analysis value per subject x parameter x visit (CT: the analysis scan of each window), with
    BASE, CHG and PCHG (null at baseline and when there is no baseline)."""
    baseline = params.visits[0].name
    arm_of = {s.usubjid: s.arm.armcd for s, _ in pairs}
    records = [
        {"USUBJID": r["USUBJID"], "PARAMCD": paramcd, "AVISIT": r["window"], "ADY": r["ADY"], "ADT": r["ADT"],
         "AVAL": r[column], "AVALU": unit}
        for r in ct_rows if r["analysis"] == "Y" for paramcd, (column, unit) in ct_params.items()
    ]
    records += [{**{k: r[k] for k in ("USUBJID", "PARAMCD", "ADY", "ADT", "AVAL", "AVALU")}, "AVISIT": r["VISIT"]}
                for r in measurement_rows]
    base = {(r["USUBJID"], r["PARAMCD"]): r["AVAL"] for r in records if r["AVISIT"] == baseline}
    out = []
    for r in records:
        b = base.get((r["USUBJID"], r["PARAMCD"]))
        post = r["AVISIT"] != baseline and b is not None
        out.append({**r, "ARMCD": arm_of[r["USUBJID"]], "BASE": b, "CHG": r["AVAL"] - b if post else None,
                    "PCHG": 100.0 * (r["AVAL"] - b) / b if post and b else None})
    order = {v.name: i for i, v in enumerate(params.visits)}
    return sorted(out, key=lambda r: (r["USUBJID"], r["PARAMCD"], order[r["AVISIT"]]))


def build_sample_summary(rows: Sequence[Mapping[str, Cell]], params: SynthParams) -> dict[str, dict[str, Cell]]:
    """Per parameter at the last visit: n and median of the change per arm, difference of medians."""
    last = params.visits[-1].name
    treated = {arm.armcd for arm in params.arms if arm.treated}
    out: dict[str, dict[str, Cell]] = {}
    for paramcd in sorted({r["PARAMCD"] for r in rows}):
        avar = "PCHG" if paramcd in ("SOLPCT", "SOLVOL", "LESVOL", "GGOVOL") else "CHG"
        values = {flag: [r[avar] for r in rows if r["PARAMCD"] == paramcd and r["AVISIT"] == last
                         and r[avar] is not None and (r["ARMCD"] in treated) == flag] for flag in (True, False)}
        med = {flag: float(np.median(v)) if v else None for flag, v in values.items()}
        diff = med[True] - med[False] if None not in med.values() else None
        out[paramcd] = {"AVISIT": last, "AVAR": avar, "n_treated": len(values[True]), "n_control": len(values[False]),
                        "median_treated": med[True], "median_control": med[False], "difference_of_medians": diff}
    return out


def build_effects(
    params: SynthParams, endpoint_rows: Sequence[Mapping[str, Cell]], generator: dict[str, int]
) -> dict[str, object]:
    """effects.json: generator arguments, the full model, true population effects, sample summary."""
    return {
        "generator": generator,
        "population_effects": build_population_effects(params),
        "sample_summary": build_sample_summary(endpoint_rows, params),
        "model": asdict(params),
        "notes": (
            "population_effects are expectations under the generative model at study day 28 "
            "(treated minus control). LESPCT is the change in lesion volume as a percentage of lung "
            "volume (points); SOLPCT the percent change of the solid percentage (= of solid volume, "
            "lung volume being constant per subject). sample_summary uses the realized truth "
            "(phantom voxel volumes, reported functional values) of this trial."
        ),
    }
