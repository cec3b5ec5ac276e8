"""Configuration, read once at the edge (CLI or flow entry) and passed down as plain objects.

`TrialConfig` comes from a YAML file (the reference trial is the shipped default);
`Settings` bundles it with where the landing area and the lake are and how to reach them.
"""
from trialake.config.settings import Settings, read_settings, storage_options_from_env
from trialake.config.trial import (
    ArmConfig,
    ConfigError,
    TrialConfig,
    VisitConfig,
    default_trial_config_path,
    load_trial_config,
)

__all__ = [
    "ArmConfig",
    "ConfigError",
    "Settings",
    "TrialConfig",
    "VisitConfig",
    "default_trial_config_path",
    "load_trial_config",
    "read_settings",
    "storage_options_from_env",
]
