"""Live events: the contract's subscriptions over websocket.

How an event travels, one way:

    a change commits with its outbox row (tenant_events, activity_stream_events)
      → relay.py: moves committed rows into Redis Streams, once each, in order
      → log.py: each tenant's and each activity's stream (24 h), plus one firehose
      → hub.py: one Redis reader per gateway process; renders each event once per group of
        identical subscriptions, through fresh loaders, and fans it out
      → websocket.py: one bounded send queue per connection (graphql-transport-ws and the
        legacy graphql-ws protocol)
"""
