"""Survey of the volumetry on random phantom variants: within the targets, flagged, refused, or quiet.

``python -m bench.volumetry_survey [--seeds 9000:9015] [--workers 2]`` measures every kind below on
every seed, on both sides (the one-sided variants), on a 96x96 grid (3.75 mm pixels, 5 mm slices)
and an 80x80 grid (4.75 mm pixels, 6.5 mm slices), against the truth of the generator's label
masks, and prints one line per kind and grid: how many cases were within the targets, outside them
but flagged, refused, and outside them without a flag ("quiet", the failures that matter). The
README's survey table is its output; ``--cases`` prints every case.

``--mixed`` draws one phantom per seed instead, mixing what the kinds keep apart: an acquisition
(``MIXED_GRIDS``: thin, thick, coarse and non-square voxels), noise of 5-30 HU (60-90 HU, a sharp
kernel, in one case of seven), blur, feet first, body and heart size, lung density (-880 to -770
HU), contrast, mediastinal shift, lungs that touch, lesions of 0-30 %, and zero to
two of the variants (``MIXED_VARIANTS``) at random sizes; it prints one line per variant (a case
counts under each of its variants) and one for all cases.
"""
from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

from bench.volumetry_accuracy import compute_accuracy
from trialake.imaging import CTVolume, NotMeasurable, measure_volume
from trialake.synth.phantom import PhantomSpec, make_chest_phantom

QUIET_DISEASE = dict(lesion_pct=3.0, solid_share=0.3, chest_wall_consolidation=False)
GRIDS = {"96x96": {}, "80x80": dict(matrix=80, slices=40, fov_mm=380.0, slice_spacing_mm=6.5)}
KINDS = {
    "plain": dict(QUIET_DISEASE),
    "mixed lesions": dict(lesion_pct=20.0, solid_share=0.4),
    "severe bilateral": dict(lesion_pct=40.0, solid_share=0.5),
    "basal consolidation": dict(QUIET_DISEASE, basal_consolidation=True),
    "severe with basal consolidation": dict(QUIET_DISEASE, basal_consolidation=True, lesion_pct=40.0,
                                            solid_share=0.4),
    "lobar consolidation": dict(QUIET_DISEASE, lobar_consolidation=True),
    "paracardiac consolidation": dict(QUIET_DISEASE, paracardiac_consolidation=True),
    "dependent density 25 mm": dict(QUIET_DISEASE, dependent_density_mm=25.0),
    "pleural effusion 30 mm": dict(QUIET_DISEASE, effusion_mm=30.0),
    "pneumothorax 20 mm": dict(QUIET_DISEASE, pneumothorax_mm=20.0),
    "liver/spleen dome island": dict(QUIET_DISEASE, dome_shift=0.8),
    "emphysema 15 %": dict(QUIET_DISEASE, emphysema_pct=15.0),
    "cardiomegaly with contrast": dict(QUIET_DISEASE, heart_scale=1.3, contrast=True),
    "sharp kernel (noise 80 HU)": dict(lesion_pct=15.0, noise_hu=80.0, blur_mm=0.4),
}
MIXED_GRIDS = (
    dict(matrix=96, slices=48, fov_mm=360.0, slice_spacing_mm=5.0),
    dict(matrix=80, slices=40, fov_mm=380.0, slice_spacing_mm=6.5),
    dict(matrix=64, slices=36, fov_mm=380.0, slice_spacing_mm=7.5),
    dict(matrix=96, slices=26, fov_mm=360.0, slice_spacing_mm=10.0),
    dict(matrix=128, slices=90, fov_mm=400.0, slice_spacing_mm=3.0),
    dict(matrix=112, slices=48, fov_mm=380.0, fov_y_mm=300.0, slice_spacing_mm=5.0),
)
MIXED_VARIANTS = {  # name: its spec fields, drawn
    "basal": lambda r: dict(basal_consolidation=True),
    "lobar": lambda r: dict(lobar_consolidation=True),
    "paracardiac": lambda r: dict(paracardiac_consolidation=True),
    "effusion": lambda r: dict(effusion_mm=r.uniform(15.0, 40.0)),
    "pneumothorax": lambda r: dict(pneumothorax_mm=r.uniform(10.0, 25.0)),
    "dependent": lambda r: dict(dependent_density_mm=r.uniform(15.0, 30.0)),
    "dome": lambda r: dict(dome_shift=r.uniform(0.5, 0.9)),
    "emphysema": lambda r: dict(emphysema_pct=r.uniform(5.0, 20.0)),
}


def draw_mixed_spec(seed: int) -> tuple[dict, tuple[str, ...]]:
    """(PhantomSpec fields, names of the variants drawn) of the mixed survey's case ``seed``."""
    r = random.Random(seed)
    spec = dict(r.choice(MIXED_GRIDS))
    spec.update(body_scale=r.uniform(0.85, 1.1), heart_scale=r.choice([1.0, 1.0, r.uniform(0.9, 1.3)]),
                contrast=r.random() < 0.3, noise_hu=r.uniform(5.0, 30.0), blur_mm=r.uniform(0.7, 1.5),
                feet_first=r.random() < 0.3, lesion_pct=r.choice([0.0, r.uniform(1.0, 30.0)]),
                solid_share=r.uniform(0.15, 0.6), chest_wall_consolidation=r.random() < 0.4,
                variant_side=r.choice([-1, 1]), seed=seed)
    spec["lung_hu"] = r.uniform(-880.0, -770.0)
    if r.random() < 0.15:  # a sharp kernel
        spec.update(noise_hu=r.uniform(60.0, 90.0), blur_mm=0.4)
    if r.random() < 0.3:
        spec["mediastinal_shift_mm"] = r.uniform(-20.0, 20.0)
    if r.random() < 0.15:
        spec["lungs_touch"] = True
    variants = tuple(r.sample(sorted(MIXED_VARIANTS), r.choice([0, 1, 1, 2])))
    for name in variants:
        spec.update(MIXED_VARIANTS[name](r))
    return spec, variants


def classify_spec(spec: dict) -> tuple[str, str]:
    """(outcome, detail) of one phantom: outcome is within, flagged, refused or QUIET."""
    phantom = make_chest_phantom(PhantomSpec(**spec))
    try:
        r = measure_volume(CTVolume(phantom.hu, phantom.spacing_mm))
    except NotMeasurable as e:
        return "refused", str(e)
    t = phantom.truth
    detail = (f"lung {r.lung_volume_ml:.0f}/{t['lung_volume_ml']:.0f} lesion% {r.lesion_pct:.2f}/{t['lesion_pct']:.2f} "
              f"ggo {r.ggo_volume_ml:.0f}/{t['ggo_volume_ml']:.0f} solid {r.solid_volume_ml:.0f}/"
              f"{t['solid_volume_ml']:.0f} flags {r.qc_flags}")
    if compute_accuracy(t, r.to_record())["within_targets"]:
        return "within", detail
    return ("flagged" if r.status != "measured" else "QUIET"), detail


def classify_case(job: tuple[str, str, int, int]) -> tuple[str, str, int, int, str, str]:
    """(kind, grid, seed, side, outcome, detail) of one case of the kinds survey."""
    kind, grid, seed, side = job
    return (kind, grid, seed, side) + classify_spec(dict(**KINDS[kind], **GRIDS[grid], variant_side=side, seed=seed))


def classify_mixed_case(seed: int) -> tuple[int, tuple[str, ...], str, str, dict]:
    """(seed, variants, outcome, detail, spec) of one case of the mixed survey."""
    spec, variants = draw_mixed_spec(seed)
    return (seed, variants) + classify_spec(spec) + (spec,)


def _print_table(counts: Counter, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    print("| " + " | ".join(header) + " | within targets | outside, flagged | refused | outside, not flagged |")
    print("|" + "---|" * (len(header) + 4))
    for row in rows:
        c = [counts[row + (o,)] for o in ("within", "flagged", "refused", "QUIET")]
        print("| " + " | ".join(row) + f" | {c[0]} | {c[1]} | {c[2]} | {c[3]} |")


def run_kinds(seeds: range, workers: int, cases: bool) -> None:
    """The kinds survey: every kind, grid, seed and side."""
    jobs = [(kind, grid, seed, side) for kind in KINDS for grid in GRIDS for seed in seeds for side in (-1, 1)]
    counts: Counter = Counter()
    with ProcessPoolExecutor(workers) as pool:
        for kind, grid, seed, side, outcome, detail in pool.map(classify_case, jobs):
            counts[kind, grid, outcome] += 1
            if cases:
                print(f"{kind} | {grid} | seed {seed} side {side:+d} | {outcome} | {detail}", flush=True)
    _print_table(counts, [(kind, grid) for kind in KINDS for grid in GRIDS], ("kind", "grid"))


def run_mixed(seeds: range, workers: int, cases: bool) -> None:
    """The mixed survey: one drawn phantom per seed."""
    counts: Counter = Counter()
    with ProcessPoolExecutor(workers) as pool:
        for seed, variants, outcome, detail, spec in pool.map(classify_mixed_case, seeds):
            for name in variants or ("none",):
                counts[name, outcome] += 1
            counts["all", outcome] += 1
            if cases:
                print(f"seed {seed} | {'+'.join(variants) or 'none'} | {outcome} | {detail} | {spec}", flush=True)
    _print_table(counts, [(name,) for name in ("none", *MIXED_VARIANTS, "all")], ("variant",))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.volumetry_survey", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=None,
                        help="first:last (exclusive) generator seeds (default 9000:9015, with --mixed 1000:1600)")
    parser.add_argument("--mixed", action="store_true", help="one phantom per seed mixing acquisition, anatomy and variants")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--cases", action="store_true", help="print every case, not only the summary")
    args = parser.parse_args(argv)
    first, last = (int(v) for v in (args.seeds or ("1000:1600" if args.mixed else "9000:9015")).split(":"))
    (run_mixed if args.mixed else run_kinds)(range(first, last), args.workers, args.cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
