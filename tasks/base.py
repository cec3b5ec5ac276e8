"""The one place task defaults are set: no input hashing, retries only on transient storage errors."""
from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from trialake.pipeline import RunContext

# pydicom's warnings and log lines can quote attribute values of the files being de-identified:
# never let them reach the run's logs.
logging.getLogger("pydicom").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module="pydicom")

_NOT_TRANSIENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_transient_storage_error(_task: Task, _run: TaskRun, state: State) -> bool:
    """Retry on network and storage hiccups; never on bad data or bad configuration."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, (OSError, TimeoutError)) and not isinstance(error, _NOT_TRANSIENT)


def stage_task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """Decorator for a pipeline stage task. A `RunContext` first argument is handed on with the
    task's name as the stage its table commits record."""
    defaults: dict[str, Any] = {
        "name": name,
        "cache_policy": NO_CACHE,
        "retries": 2,
        "retry_delay_seconds": [2, 10],
        "retry_condition_fn": is_transient_storage_error,
    }

    def decorate(function: Callable[..., Any]) -> Task:
        @functools.wraps(function)
        def in_stage(*args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], RunContext):
                args = (args[0].for_stage(name), *args[1:])
            elif isinstance(kwargs.get("ctx"), RunContext):
                kwargs["ctx"] = kwargs["ctx"].for_stage(name)
            return function(*args, **kwargs)

        return task(**(defaults | options))(in_stage)

    return decorate
