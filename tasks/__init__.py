"""Agent work: the job queue (Taskiq on a Redis broker of our own), the worker, the agent
runtimes and the scheduled jobs.

- `tasks.queue`: what the mutations call after their transaction commits
  (`enqueue_activity`, `agent_status_changed`).
- `tasks.broker`: the broker: strict priorities, per-agent concurrency caps, leases,
  deduplication, delayed retries (`tasks/lua.py` holds its Redis scripts).
- `tasks.jobs`: the Taskiq tasks and the retry / dead-letter middleware.
- `tasks.worker`: `switchboard worker`: reconciler, heartbeats, scheduled jobs, receiver.
- `tasks.outage`: riding out PostgreSQL and Redis outages (which errors are outages, the
  backoff, one log line when one starts and one when it ends).
- `tasks.runtimes`: the agent runtimes (simulated, OpenAI-compatible) behind one interface.
"""
