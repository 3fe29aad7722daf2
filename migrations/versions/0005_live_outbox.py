"""The live-events outbox: activity stream events, relay marks, and the wake-up notification.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

- `activity_stream_events` is the outbox of `activityStream`. Triggers on `activities` write
  it in the same transaction as the change: a STATUS row for every new status (the first
  one included) and a TOKEN row with the appended text for every append to `output`.
  Triggers, because every path that changes an activity (mutations, the worker, the
  reconciler, dead letters) must stream it, and a missed path would be a silent gap.
- `relayed` marks the rows of both outboxes that the relay (switchboard/live/relay.py) has
  moved into Redis Streams; the partial indexes keep the unrelayed ones cheap to find.
- Each insert into either outbox notifies channel `switchboard_outbox` (delivered at
  commit, never for a rollback), which wakes the relays at once.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE activity_stream_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id uuid NOT NULL,
        activity_id uuid NOT NULL,
        kind text NOT NULL CHECK (kind IN ('TOKEN', 'STATUS')),
        text text,
        status text,
        occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        relayed boolean NOT NULL DEFAULT false
    )
    """)
    op.execute(
        "CREATE INDEX activity_stream_events_unrelayed ON activity_stream_events (id) "
        "WHERE NOT relayed"
    )
    op.execute("ALTER TABLE tenant_events ADD COLUMN relayed boolean NOT NULL DEFAULT false")
    op.execute("CREATE INDEX tenant_events_unrelayed ON tenant_events (id) WHERE NOT relayed")
    op.execute("CREATE INDEX tenant_events_occurred ON tenant_events (occurred_at)")
    op.execute(
        "CREATE INDEX activity_stream_events_occurred ON activity_stream_events (occurred_at)"
    )

    op.execute("""
    CREATE FUNCTION capture_activity_stream() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        before text := CASE WHEN TG_OP = 'UPDATE' THEN coalesce(OLD.output, '') ELSE '' END;
        after text := coalesce(NEW.output, '');
    BEGIN
        -- A bulk load of history (switchboard/devdata/seed.py `copy_rows`) is no live change.
        IF current_setting('switchboard.bulk_load', true) = 'on' THEN
            RETURN NULL;
        END IF;
        -- Appended text (output only ever grows while a run streams; a restart that
        -- clears it streams nothing).
        IF length(after) > length(before) AND starts_with(after, before) THEN
            INSERT INTO activity_stream_events (tenant_id, activity_id, kind, text)
            VALUES (NEW.tenant_id, NEW.id, 'TOKEN', substr(after, length(before) + 1));
        END IF;
        IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
            INSERT INTO activity_stream_events (tenant_id, activity_id, kind, status)
            VALUES (NEW.tenant_id, NEW.id, 'STATUS', NEW.status);
        END IF;
        RETURN NULL;
    END
    $$
    """)
    op.execute("""
    CREATE TRIGGER activities_stream
    AFTER INSERT OR UPDATE OF output, status ON activities
    FOR EACH ROW EXECUTE FUNCTION capture_activity_stream()
    """)
    op.execute("""
    CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('switchboard_outbox', '');
        RETURN NULL;
    END
    $$
    """)
    for table in ("tenant_events", "activity_stream_events"):
        op.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox()"
        )


def downgrade() -> None:
    for table in ("tenant_events", "activity_stream_events"):
        op.execute(f"DROP TRIGGER {table}_notify ON {table}")
    op.execute("DROP FUNCTION notify_outbox()")
    op.execute("DROP TRIGGER activities_stream ON activities")
    op.execute("DROP FUNCTION capture_activity_stream()")
    op.execute("DROP INDEX tenant_events_occurred")
    op.execute("DROP INDEX tenant_events_unrelayed")
    op.execute("ALTER TABLE tenant_events DROP COLUMN relayed")
    op.execute("DROP TABLE activity_stream_events")
