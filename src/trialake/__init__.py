"""Trialake: a workflow-orchestrated imaging-plus-clinical data lake for clinical trials."""
__version__ = "0.1.0"
