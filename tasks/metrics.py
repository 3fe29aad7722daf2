"""The job system's Prometheus metrics, all in this one module (the worker exposes them on
SWITCHBOARD_WORKER_METRICS_PORT when set). Redis keeps the fleet-wide dead-letter count
too (`<prefix>dead_letters`), since each worker's Prometheus counter is its own."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DEAD_LETTERS = Counter(
    "switchboard_dead_letters_total",
    "Jobs that failed after their last retry (activity FAILED, escalated to a person).",
)
JOB_RETRIES = Counter("switchboard_job_retries_total", "Failed job attempts scheduled again.")
JOB_RUNS = Counter("switchboard_job_runs_total", "Jobs run to their end, by outcome.", ["outcome"])
PICKUP_SECONDS = Histogram(
    "switchboard_job_pickup_seconds",
    "From enqueue to a worker claiming the job.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
