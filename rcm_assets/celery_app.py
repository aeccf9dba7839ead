"""The Celery app `rcm worker` runs: dagster-celery's step task with this project's settings,
which the executor (defs/executor.py) shares, so both sides agree on queue and delivery."""

import os

from celery import Celery
from dagster_celery.defaults import broker_url
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task


def celery_settings() -> dict[str, object]:
    return {
        "task_default_queue": os.environ.get("RCM_CELERY_QUEUE", "dagster"),
        # A step's message is acknowledged when the step has ended, not when a worker takes it:
        # a worker killed mid-step drops its connection and the broker hands the step to another
        # worker. Every step is safe to run again (one Delta commit; consumed load ids).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
    }


def broker() -> str:
    return os.environ.get("RCM_CELERY_BROKER", broker_url)


def worker_app() -> Celery:
    executor = CeleryExecutor.for_cli(
        broker=broker(), backend="rpc://", config_source=celery_settings()
    )
    return make_app(executor.app_args())


app = worker_app()
execute_plan = create_task(app)
