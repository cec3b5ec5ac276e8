"""Survey of the volumetry on random phantom variants: within the targets, flagged, refused, or quiet.

``python -m bench.volumetry_survey [--seeds 9000:9015] [--workers 2]`` measures every kind below on
every seed, on both sides (the one-sided variants), on a 96x96 grid (3.75 mm pixels, 5 mm slices)
and an 80x80 grid (4.75 mm pixels, 6.5 mm slices), against the truth of the generator's label
masks, and prints one line per kind and grid: how many cases were within the targets, outside them
but flagged, refused, and outside them without a flag ("quiet", the failures that matter). The
README's survey table is its output; ``--cases`` prints every case.
"""
from __future__ import annotations

import argparse
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


def classify_case(job: tuple[str, str, int, int]) -> tuple[str, str, int, int, str, str]:
    """(kind, grid, seed, side, outcome, detail): outcome is within, flagged, refused or QUIET."""
    kind, grid, seed, side = job
    phantom = make_chest_phantom(PhantomSpec(**KINDS[kind], **GRIDS[grid], variant_side=side, seed=seed))
    try:
        r = measure_volume(CTVolume(phantom.hu, phantom.spacing_mm))
    except NotMeasurable as e:
        return kind, grid, seed, side, "refused", str(e)
    t = phantom.truth
    detail = (f"lung {r.lung_volume_ml:.0f}/{t['lung_volume_ml']:.0f} lesion% {r.lesion_pct:.2f}/{t['lesion_pct']:.2f} "
              f"ggo {r.ggo_volume_ml:.0f}/{t['ggo_volume_ml']:.0f} solid {r.solid_volume_ml:.0f}/"
              f"{t['solid_volume_ml']:.0f} flags {r.qc_flags}")
    if compute_accuracy(t, r.to_record())["within_targets"]:
        return kind, grid, seed, side, "within", detail
    return kind, grid, seed, side, ("flagged" if r.status != "measured" else "QUIET"), detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.volumetry_survey", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="9000:9015", help="first:last (exclusive) generator seeds (default 9000:9015)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--cases", action="store_true", help="print every case, not only the summary")
    args = parser.parse_args(argv)
    first, last = (int(v) for v in args.seeds.split(":"))
    jobs = [(kind, grid, seed, side) for kind in KINDS for grid in GRIDS for seed in range(first, last)
            for side in (-1, 1)]
    counts: Counter = Counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for kind, grid, seed, side, outcome, detail in pool.map(classify_case, jobs):
            counts[kind, grid, outcome] += 1
            if args.cases:
                print(f"{kind} | {grid} | seed {seed} side {side:+d} | {outcome} | {detail}", flush=True)
    print("| kind | grid | within targets | outside, flagged | refused | outside, not flagged |")
    print("|---|---|---|---|---|---|")
    for kind in KINDS:
        for grid in GRIDS:
            c = [counts[kind, grid, o] for o in ("within", "flagged", "refused", "QUIET")]
            print(f"| {kind} | {grid} | {c[0]} | {c[1]} | {c[2]} | {c[3]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
