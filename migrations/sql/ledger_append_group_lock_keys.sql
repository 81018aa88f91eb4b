-- ledger_append_group: several deliveries appended in one call, one transaction and one
-- NOTIFY (see migration 0014 and service/store/events/postgres.py). The one live append on
-- PostgreSQL.
--
-- deliveries is a JSON array of {"events": [...], "delivery": {...} | null}, handled in array
-- order, each as if it were appended alone: a notification delivered twice in one group is
-- appended by the first and found by the second (duplicate, or conflict when the content
-- differs), as it would be across two calls. The result is an array with one element per
-- delivery: the array of {"outcome", "position"} of its events.
--
-- The lock keys are arguments, so that the service's constants (APPEND_LOCK_KEY and
-- STREAM_LOCK_CLASS in service/store/events/base.py) are their only source: the shared
-- append lock lets a reader take its horizon only when no append is in flight; the
-- per-stream locks of every stream of the group are taken once, in sorted order, so that two
-- groups sharing streams cannot deadlock.
-- Linear in the number of events: arrays grow in place, nothing is re-copied per event.
CREATE FUNCTION ledger_append_group(
    deliveries jsonb, append_lock_key bigint, stream_lock_class integer
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    item jsonb;
    delivery jsonb;
    event jsonb;
    appended_position bigint;
    existing record;
    event_outcome text;
    outcomes text[];
    positions bigint[];
    anything_appended boolean := false;
    results jsonb[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock_shared(append_lock_key);
    PERFORM pg_advisory_xact_lock(stream_lock_class, hashtext(stream_id))
    FROM (SELECT DISTINCT e->>'stream_id' AS stream_id
          FROM jsonb_array_elements(deliveries) AS d,
               jsonb_array_elements(d->'events') AS e
          ORDER BY 1) AS streams;

    FOR item IN SELECT value FROM jsonb_array_elements(deliveries) LOOP
        outcomes := '{}';
        positions := '{}';
        FOR event IN SELECT value FROM jsonb_array_elements(item->'events') LOOP
            appended_position := NULL;
            INSERT INTO events (stream_id, version, type, schema_version, occurred_at,
                                recorded_at, source, idempotency_key, content_digest, data)
            VALUES (
                event->>'stream_id',
                (SELECT coalesce(max(version), 0) + 1 FROM events
                 WHERE stream_id = event->>'stream_id'),
                event->>'type',
                (event->>'schema_version')::smallint,
                (event->>'occurred_at')::timestamptz,
                (event->>'recorded_at')::timestamptz,
                event->>'source',
                event->>'idempotency_key',
                event->>'content_digest',
                event->'data'
            )
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING position INTO appended_position;

            IF appended_position IS NOT NULL THEN
                event_outcome := 'appended';
                anything_appended := true;
            ELSE
                SELECT position, content_digest INTO existing
                FROM events WHERE idempotency_key = event->>'idempotency_key';
                appended_position := existing.position;
                event_outcome := CASE WHEN existing.content_digest = event->>'content_digest'
                                      THEN 'duplicate' ELSE 'conflict' END;
            END IF;
            outcomes := outcomes || event_outcome;
            positions := positions || appended_position;
        END LOOP;

        delivery := item->'delivery';
        IF delivery IS NOT NULL AND jsonb_typeof(delivery) = 'object' THEN
            INSERT INTO inbox (received_at, outcome, reason, notification_id, event_type,
                               webhook_id, key_id, signed_content, retry_count, trace_id,
                               event_position, body, headers, signed_at,
                               organization_id)
            VALUES (
                (delivery->>'received_at')::timestamptz,
                CASE WHEN 'conflict' = ANY(outcomes) THEN 'conflict'
                     WHEN 'appended' = ANY(outcomes) THEN 'accepted'
                     ELSE 'duplicate' END,
                delivery->>'reason',
                delivery->>'notification_id',
                delivery->>'event_type',
                delivery->>'webhook_id',
                delivery->>'key_id',
                delivery->>'signed_content',
                (delivery->>'retry_count')::integer,
                delivery->>'trace_id',
                positions[1],
                decode(delivery->>'body_base64', 'base64'),
                CASE WHEN jsonb_typeof(delivery->'headers') = 'object'
                     THEN delivery->'headers' END,
                (delivery->>'signed_at')::timestamptz,
                delivery->>'organization_id'
            );
        END IF;
        results := results || coalesce(
            (SELECT jsonb_agg(jsonb_build_object('outcome', outcome, 'position', position)
                              ORDER BY ordinal)
             FROM unnest(outcomes, positions)
                  WITH ORDINALITY AS appended(outcome, position, ordinal)),
            '[]'::jsonb);
    END LOOP;

    IF anything_appended THEN
        PERFORM pg_notify('ledger_events', '');  -- wakes projectors, delivered at commit
    END IF;
    RETURN to_jsonb(results);
END
$$
;
