"""Credentials that never travel: a value read from an environment variable which, when pickled
(a task's arguments shipped to a Dask worker, a flow run's parameters), carries only the variable's
name and is read again from the receiving process's environment."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


class EnvSecret(str):
    """The value of environment variable ``name``; pickles as the name only."""

    name: str

    def __new__(cls, name: str, value: str) -> EnvSecret:
        secret = super().__new__(cls, value)
        secret.name = name
        return secret

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return read_env_secret_here, (self.name,)

    def __copy__(self) -> EnvSecret:
        return self

    def __deepcopy__(self, _memo: dict[int, Any]) -> EnvSecret:
        return self

    def __repr__(self) -> str:
        return f"EnvSecret({self.name!r})"


def env_secret(environ: Mapping[str, str], name: str) -> EnvSecret | None:
    """``environ[name]`` as an EnvSecret, or None when it is unset or empty."""
    value = environ.get(name)
    return EnvSecret(name, value) if value else None


def read_env_secret_here(name: str) -> EnvSecret:
    """The secret as this process's environment has it (where a pickled EnvSecret arrives)."""
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set in the environment of this process (pid {os.getpid()}): set it for every "
            "Prefect worker and Dask worker that runs Trialake tasks (see infra/README.md)"
        )
    return EnvSecret(name, value)
