"""Batches spooled to a local Arrow IPC file before ONE append: memory bounded by the batch.

A streamed extract only knows its row count and maximum watermark once the last batch has
arrived, but the Delta commit that appends it must carry them (the audit row is recovered from
that commit). So the batches go to a local file first, then to Delta in one `write_deltalake`
from a RecordBatchReader over that file. Nothing reaches the table before that commit. A
process killed while staging leaves its folder (named with its process id) behind; the next
staging on the machine removes the folders of processes that no longer run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:  # pyarrow imports numpy: imported when a load stages, not at definitions load
    import pyarrow as pa

STAGING_PREFIX = "rcm-staging-"


class Staged:
    """An append in the making: `add` frames of one schema, then read them back as a stream."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "batches.arrows"
        self.rows = 0
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None

    def add(self, frame: pl.DataFrame) -> None:
        import pyarrow as pa

        if frame.is_empty():
            return
        table = frame.to_arrow()
        if self._writer is None:
            self._schema = table.schema
            self._writer = pa.ipc.new_stream(str(self.path), self._schema)
        self._writer.write_table(table.cast(self._schema))
        self.rows += frame.height

    def reader(self) -> pa.RecordBatchReader:
        """The staged rows, streamed back batch by batch (call once, after the last `add`)."""
        import pyarrow as pa

        if self._writer is None:
            raise ValueError("nothing was staged")
        self.close()
        # Read, not memory-mapped: a mapped file counts in the resident memory as it is read.
        return pa.ipc.open_stream(pa.OSFile(str(self.path)))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_abandoned(root: Path | None = None) -> list[Path]:
    """Delete the staging folders of processes that died (SIGKILL, power loss) mid-load."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*-*"):
        owner = folder.name.removeprefix(STAGING_PREFIX).split("-")[0]
        if owner.isdigit() and not _running(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def staging_folder() -> tempfile.TemporaryDirectory:
    """A folder for staged batches, named so that `remove_abandoned` finds it after a crash."""
    remove_abandoned()
    return tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-")


@contextmanager
def staging() -> Iterator[Staged]:
    with staging_folder() as folder:
        staged = Staged(Path(folder))
        try:
            yield staged
        finally:
            staged.close()
