"""Prefect flows: parameters in, tasks composed, no logic."""
