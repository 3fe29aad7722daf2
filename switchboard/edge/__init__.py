"""The production edge of /graphql: what protects and speeds up the endpoint before and
around execution. Each module owns one concept:

- `persisted`: Automatic Persisted Queries (Apollo's protocol, shared through Redis) and
  the trusted documents of the persisted-query manifests loaded at start;
- `limits`: operation limits (depth, aliases, tokens, estimated cost) computed once per
  document and checked against each request's variables;
- `ratelimit`: the sliding-window rate limiter in Redis, with an in-process fallback;
- `response_cache`: the tenant-scoped field cache of mobileHome, spend and spendReport;
- `invalidation`: which changes invalidate which cached fields, and `invalidate()`;
- `compression`: gzip and brotli for large response bodies (an ASGI middleware);
- `etag`: ETag and 304 Not Modified for GET queries;
- `timing`: the Server-Timing header;
- `breaker`: when Redis failed, skip it for a moment instead of paying its timeout on
  every request.
"""
