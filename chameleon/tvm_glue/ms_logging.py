"""MetaSchedule's logger setup, tamed.

``extracted_tasks_to_tune_contexts`` / ``TuneContext`` call ``create_loggers``, which (1) copies the
``tvm.s_tir.meta_schedule`` logger's level to a new stdout handler and then sets the logger to
DEBUG, so a second run in the same process prints everything; and (2) re-lists every handler
already on that logger by name in a ``dictConfig``, which fails for handlers it did not create
(pytest's capture handler, for one). :func:`ms_logger_setup` removes foreign handlers first and
restores the level afterwards; MetaSchedule's own per-task log files are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

MS_LOGGER = "tvm.s_tir.meta_schedule"


@contextmanager
def ms_logger_setup(*, console_level: int | None = None) -> Iterator[None]:
    logger = logging.getLogger(MS_LOGGER)
    for handler in list(logger.handlers):
        if not (handler.get_name() or "").startswith(MS_LOGGER):
            logger.removeHandler(handler)
    level = console_level if console_level is not None else logger.level
    logger.setLevel(level or logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(level or logging.DEBUG)
