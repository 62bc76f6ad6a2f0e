"""How jobs end: a counter by type and outcome, a duration histogram by type."""

from __future__ import annotations

import functools
import time

from prometheus_client import Counter, Histogram

JOBS = Counter(
    "cloudiag_jobs",
    "Diagnostics jobs ended, by type and outcome (succeeded, timedout, cancelled, failed)",
    ["type", "outcome"],
)
DURATION = Histogram(
    "cloudiag_job_duration_seconds",
    "From a job's creation to its outcome stored, by type",
    ["type"],
    # ping -c 1 ends in about 0.1 s; a traceroute may take minutes (time limits up to 1 h).
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
)


@functools.cache
def _series(type_name: str, outcome: str) -> tuple[Counter, Histogram]:
    """The counter and the histogram of one type and outcome, looked up once: the lookup
    costs more than the count (a few types and four outcomes, so few entries)."""
    return JOBS.labels(type_name, outcome), DURATION.labels(type_name)


def ended(type_name: str, outcome: str, created: float) -> None:
    """Count one job whose outcome was committed; `created` is its Unix creation time
    (0 when unknown: counted, not timed)."""
    count, duration = _series(type_name, outcome)
    count.inc()
    if created > 0:
        duration.observe(max(0.0, time.time() - created))
