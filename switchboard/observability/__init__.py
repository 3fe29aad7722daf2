"""Observability: what an operator sees of a running gateway. One concept per module:

- `tracing`: the OpenTelemetry tracer provider (OTLP export configured by the standard
  OTEL_* variables, nothing exported by default) and the span helpers the others use;
- `export`: OTLP encoding and sending in a child process, off the requests' interpreter;
- `metrics`: every Prometheus instrument (names, labels, buckets), `/metrics`, and the
  multiprocess set-up for several worker processes;
- `middleware`: the ASGI middleware: a span per HTTP request and websocket connection,
  requests in progress, requests by route and status;
- `operations`: a span per GraphQL operation (name, type, document hash), the request
  duration histogram and errors by code, opt-in resolver spans;
- `database`: a span per SQL statement, statement durations and the pool's gauges;
- `redis`: a span per Redis command (a traced `Redis` client);
- `health`: `/healthz` (liveness) and `/readyz` (database, Redis, migrations; cached);
- `logs`: structured JSON logs carrying the trace id, with secrets and tokens redacted;
- `jobs`, `live`, `llm`, `cache`: instruments for background jobs, websocket
  subscriptions, LLM spend and caches, for the features that call them.

Nothing here imports the schema, resolvers or loaders: the edge and the database call in.
"""
