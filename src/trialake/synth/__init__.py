"""Synthetic clinical trial generator: landing area (DICOM CT + clinical exports) and ground truth."""
from trialake.synth.generate import GeneratedTrial, generate_trial
from trialake.synth.params import SynthParams

__all__ = ["GeneratedTrial", "SynthParams", "generate_trial"]
