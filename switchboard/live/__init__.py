"""Live events: the contract's subscriptions over websocket, SSE and multipart HTTP.

How an event travels, one way:

    a change commits with its outbox row (tenant_events, activity_stream_events)
      → relay.py: moves committed rows into Redis Streams, once each, in order
      → log.py: each tenant's and each activity's stream (24 h), plus one firehose
      → hub.py: one Redis reader per gateway process; renders each event once per group of
        identical subscriptions, through fresh loaders, and fans it out
      → one bounded send queue per connection or stream, each transport only its framing:
        websocket.py (graphql-transport-ws and the legacy graphql-ws protocol), sse.py
        (graphql-sse, both modes) and multipart.py (Apollo's multipart subscriptions), the
        last two on stream.py (heartbeats, terminal events, close reasons)

Every transport starts its subscriptions through subscribe.py: the one admission path
(switchboard/edge/admission.py), then the hub's groups, so subscribers of one document,
variables and tenant share one execution per event whatever carries them.
"""
