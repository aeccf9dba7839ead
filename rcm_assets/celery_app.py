"""The Celery app `rcm worker` runs: dagster-celery's step task with this project's settings
(`settings.celery_settings`, which the executor uses too)."""

import os

from celery import Celery
from dagster_celery.defaults import broker_url
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from rcm_assets.settings import celery_settings


def worker_app() -> Celery:
    broker = os.environ.get("RCM_CELERY_BROKER", broker_url)  # a secret: never on argv
    executor = CeleryExecutor.for_cli(
        broker=broker, backend="rpc://", config_source=celery_settings()
    )
    return make_app(executor.app_args())


app = worker_app()
execute_plan = create_task(app)
