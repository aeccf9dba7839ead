"""How a run executes its steps, chosen by the deployment (`RCM_EXECUTOR`), not the code.

- `multiprocess` (default): Dagster's default executor, a process per step on the run's host
  (`in_process` through run config).
- `celery`: every step is a task on the Celery broker (`RCM_CELERY_BROKER`, default RabbitMQ
  on localhost), in the queue `RCM_CELERY_QUEUE` (default `dagster`), and runs in whichever
  worker takes it (`make workers`). The instance must be one every worker reaches
  (PostgreSQL, `deploy/dagster.yaml`).
"""

import os

import dagster as dg

from rcm_assets.settings import EXECUTORS, celery_settings


@dg.definitions
def executor() -> dg.Definitions:
    chosen = os.environ.get("RCM_EXECUTOR", "multiprocess")
    if chosen not in EXECUTORS:
        raise ValueError(f"RCM_EXECUTOR={chosen!r}: use one of {', '.join(EXECUTORS)}")
    if chosen != "celery":
        return dg.Definitions()
    from dagster_celery import celery_executor

    config: dict[str, object] = {"backend": "rpc://", "config_source": celery_settings()}
    if os.environ.get("RCM_CELERY_BROKER"):  # may hold a password: referenced, never copied
        config["broker"] = {"env": "RCM_CELERY_BROKER"}
    return dg.Definitions(executor=celery_executor.configured(config))
