"""At most `max_concurrent_extracts` (metadata/databases.csv) extracts at once per EMR database,
across runs, processes and machines, counted in Dagster's concurrency pools.

A Dagster pool belongs to an asset, and one bronze asset reads every hospital's database (a
partition each), so `pool=` cannot name the database. The step claims a slot of the pool
`emr:<database>` itself, in the instance's concurrency tables, before it connects, and frees it
when the extract ends; the UI's pool page shows the limit, the holders and the waiting steps.
A slot still held by a run that has ended is freed by the next claimant; a run whose process
died stays "started" until the daemon's run monitoring fails it and frees its slots.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import AssetExecutionContext

from rcm_assets.metadata import DatabaseSpec

POLL_SECONDS = 0.5


def pool_of(database: DatabaseSpec) -> str:
    return f"emr:{database.database}"


@contextmanager
def extract_slot(context: AssetExecutionContext, database: DatabaseSpec) -> Iterator[None]:
    storage = context.instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        yield  # an instance without concurrency tables: nothing to count in
        return
    pool, run_id = pool_of(database), context.run.run_id
    step = f"{context.op_execution_context.op.name}[{context.partition_key}]"
    if storage.get_concurrency_info(pool).slot_count != database.max_concurrent_extracts:
        # metadata decides; written only when it changed, not by every extract at once
        storage.set_concurrency_slots(pool, database.max_concurrent_extracts)
    for holder in storage.get_concurrency_info(pool).active_run_ids - {run_id}:
        run = context.instance.get_run_by_id(holder)
        if run is not None and run.is_finished:  # a run that ended without freeing its slot
            storage.free_concurrency_slots_for_run(holder)
    waited = time.monotonic()
    while not storage.claim_concurrency_slot(pool, run_id, step).is_claimed:
        if time.monotonic() - waited < POLL_SECONDS:  # say it once
            context.log.info(
                f"waiting for a slot of pool {pool}: at most {database.max_concurrent_extracts} "
                "extract(s) at once (max_concurrent_extracts in metadata/databases.csv)"
            )
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        storage.free_concurrency_slot_for_step(run_id, step)
