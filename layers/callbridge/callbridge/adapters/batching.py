"""Powertools batch processing, with a batch's records handled at the same time."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger


def failures_logged_by(logger: Logger) -> logging.Logger:
    """What a batch processor is given to log each record that failed, with its traceback: the standard logger
    behind a function's Powertools `logger` (same JSON lines). Without one, Powertools reports a failed record
    to the queue (batchItemFailures) and to nobody else: a record failing on every delivery left no trace."""
    return logging.getLogger(logger.name)


class ConcurrentBatchProcessor(BatchProcessor):
    """A BatchProcessor whose records run on a small thread pool: one slow record does not hold up the
    others (each still succeeds or fails on its own, reported with ReportBatchItemFailures).

    Record handlers must be thread-safe. An exception that is not an Exception (a crash) still
    propagates and fails the whole invocation, as it would have sequentially.
    """

    def __init__(self, event_type: EventType, *, workers: int = 10, **kwargs: Any) -> None:
        super().__init__(event_type, **kwargs)
        self.workers = workers

    def process(self) -> list[tuple[Any, ...]]:
        records = list(self.records)
        if len(records) <= 1 or self.workers <= 1:
            return super().process()
        with ThreadPoolExecutor(max_workers=min(self.workers, len(records)), thread_name_prefix="record") as pool:
            return list(pool.map(self._process_record, records))
