"""The quality suites as package data: installed as ``trialake.expectations`` (see pyproject.toml)."""
