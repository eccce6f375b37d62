"""Identity of a measured configuration, stable across processes and strategies."""

from __future__ import annotations

import hashlib


def trace_key(trace) -> str:
    """Hash of a schedule trace's instructions and decisions, postprocessing removed.

    Two candidates of one workload with the same key are the same program: postprocessors are
    deterministic given the trace. (Structural hashes of the scheduled IR are not a usable key:
    replaying a database trace can give an equivalent module with a different hash.)
    """
    text = str(trace.as_json(remove_postproc=True))
    return hashlib.sha1(text.encode()).hexdigest()[:20]
