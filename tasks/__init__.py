"""Prefect task wrappers around `trialake.pipeline` stages: retries, logging, artifacts; no logic."""
