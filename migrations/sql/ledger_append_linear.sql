-- ledger_append, linear in the number of events of a delivery (see migration 0004).
CREATE OR REPLACE FUNCTION ledger_append(new_events jsonb, delivery jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    event jsonb;
    appended_position bigint;
    existing record;
    event_outcome text;
    -- Arrays grow in place in PL/pgSQL; concatenating jsonb copied the whole result on every
    -- event, quadratic in the number of events of a delivery.
    outcomes text[] := '{}';
    positions bigint[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock_shared(132454547457);
    PERFORM pg_advisory_xact_lock(7894, hashtext(stream_id))
    FROM (SELECT DISTINCT e->>'stream_id' AS stream_id
          FROM jsonb_array_elements(new_events) AS e ORDER BY 1) AS streams;

    FOR event IN SELECT value FROM jsonb_array_elements(new_events) LOOP
        appended_position := NULL;
        INSERT INTO events (stream_id, version, type, schema_version, occurred_at, recorded_at,
                            source, idempotency_key, content_digest, data)
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

    IF 'appended' = ANY(outcomes) THEN
        PERFORM pg_notify('ledger_events', '');  -- wakes projectors, delivered at commit
    END IF;

    IF delivery IS NOT NULL THEN
        INSERT INTO inbox (received_at, outcome, reason, notification_id, event_type,
                           webhook_id, key_id, signed_content, retry_count, trace_id,
                           event_position, body)
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
            decode(delivery->>'body_base64', 'base64')
        );
    END IF;
    RETURN coalesce(
        (SELECT jsonb_agg(jsonb_build_object('outcome', outcome, 'position', position)
                          ORDER BY ordinal)
         FROM unnest(outcomes, positions) WITH ORDINALITY AS appended(outcome, position, ordinal)),
        '[]'::jsonb);
END
$$
;
