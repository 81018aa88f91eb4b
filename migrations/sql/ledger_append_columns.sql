-- ledger_append_columns: a group of deliveries appended in one call, one transaction and at
-- most one NOTIFY (see service/store/events/postgres.py). The one live append on PostgreSQL.
--
-- The group arrives as columns: one array element per event (every delivery's events, in
-- delivery order) and one per inbox row, each tied to its delivery by a 0-based index. Three
-- set-based statements do what a loop over a JSON document did one event at a time, with the
-- same answers: deliveries are handled as if appended one after another, so a notification
-- delivered twice in one group is appended by the first and found by the second (duplicate,
-- or conflict when the content differs).
--
-- 1. Which events are new: not stored yet, and the first of their key within the group.
--    Versions follow each stream's highest, in group order; positions follow group order.
-- 2. Every event's outcome and position, from what was stored before and what (1) inserted.
-- 3. The inbox rows, each with its delivery's outcome and first position.
--
-- The result is one row per event, in group order: its outcome and position.
--
-- The lock keys are arguments, so that the service's constants (APPEND_LOCK_KEY and
-- STREAM_LOCK_CLASS in service/store/events/base.py) are their only source: the shared
-- append lock lets a reader take its horizon only when no append is in flight; the
-- per-stream locks of every stream of the group are taken once, in sorted order, so that two
-- groups sharing streams cannot deadlock, and no other append changes a stream's events
-- between (1)'s look-up and its insert. An idempotency key is unique across streams: should
-- another stream's append store one of the group's keys in that moment, the insert fails
-- on the unique index and the service retries the group's deliveries one at a time.
CREATE FUNCTION ledger_append_columns(
    append_lock_key bigint,
    stream_lock_class integer,
    recorded_at timestamptz,
    event_deliveries integer[],
    stream_ids text[],
    types text[],
    schema_versions smallint[],
    occurred_ats timestamptz[],
    sources text[],
    idempotency_keys text[],
    content_digests text[],
    datas jsonb[],
    inbox_deliveries integer[],
    received_ats timestamptz[],
    reasons text[],
    notification_ids text[],
    event_types text[],
    webhook_ids text[],
    key_ids text[],
    signed_contents text[],
    retry_counts integer[],
    trace_ids text[],
    bodies bytea[],
    headers jsonb[],
    signed_ats timestamptz[],
    organization_ids text[]
) RETURNS TABLE (event_outcome text, stored_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    outcomes text[];
    positions bigint[];
BEGIN
    PERFORM pg_advisory_xact_lock_shared(append_lock_key);
    PERFORM pg_advisory_xact_lock(stream_lock_class, hashtext(stream_id))
    FROM (SELECT DISTINCT stream_id FROM unnest(stream_ids) AS stream_id ORDER BY 1) AS streams;

    WITH given AS (
        SELECT *
        FROM unnest(event_deliveries, stream_ids, types, schema_versions, occurred_ats,
                    sources, idempotency_keys, content_digests, datas)
             WITH ORDINALITY AS g(delivery, stream_id, type, schema_version, occurred_at,
                                  source, idempotency_key, content_digest, data, ordinal)
    ),
    stored AS (
        SELECT e.idempotency_key, e.position, e.content_digest
        FROM events AS e
        WHERE e.idempotency_key = ANY (idempotency_keys)
    ),
    fresh AS (
        SELECT DISTINCT ON (g.idempotency_key) g.*
        FROM given AS g
        WHERE NOT EXISTS (SELECT FROM stored AS s WHERE s.idempotency_key = g.idempotency_key)
        ORDER BY g.idempotency_key, g.ordinal
    ),
    numbered AS (
        SELECT f.*,
               coalesce((SELECT max(e.version) FROM events AS e WHERE e.stream_id = f.stream_id),
                        0)
               + row_number() OVER (PARTITION BY f.stream_id ORDER BY f.ordinal) AS version
        FROM fresh AS f
    ),
    inserted AS (
        INSERT INTO events (stream_id, version, type, schema_version, occurred_at,
                            recorded_at, source, idempotency_key, content_digest, data)
        SELECT n.stream_id, n.version, n.type, n.schema_version, n.occurred_at,
               recorded_at, n.source, n.idempotency_key, n.content_digest, n.data
        FROM numbered AS n
        ORDER BY n.ordinal
        RETURNING events.idempotency_key, events.position, events.content_digest
    ),
    answered AS (
        SELECT g.ordinal,
               CASE WHEN f.ordinal = g.ordinal THEN 'appended'
                    WHEN coalesce(s.content_digest, i.content_digest) = g.content_digest
                        THEN 'duplicate'
                    ELSE 'conflict' END AS outcome,
               coalesce(s.position, i.position) AS position
        FROM given AS g
        LEFT JOIN stored AS s ON s.idempotency_key = g.idempotency_key
        LEFT JOIN inserted AS i ON i.idempotency_key = g.idempotency_key
        LEFT JOIN fresh AS f ON f.idempotency_key = g.idempotency_key
    )
    SELECT coalesce(array_agg(a.outcome ORDER BY a.ordinal), '{}'),
           coalesce(array_agg(a.position ORDER BY a.ordinal), '{}')
    INTO outcomes, positions
    FROM answered AS a;

    INSERT INTO inbox (received_at, outcome, reason, notification_id, event_type, webhook_id,
                       key_id, signed_content, retry_count, trace_id, event_position, body,
                       headers, signed_at, organization_id)
    SELECT b.received_at,
           CASE WHEN d.any_conflict THEN 'conflict'
                WHEN d.any_appended THEN 'accepted'
                ELSE 'duplicate' END,
           b.reason, b.notification_id, b.event_type, b.webhook_id, b.key_id,
           b.signed_content, b.retry_count, b.trace_id, d.first_position, b.body, b.headers,
           b.signed_at, b.organization_id
    FROM unnest(inbox_deliveries, received_ats, reasons, notification_ids, event_types,
                webhook_ids, key_ids, signed_contents, retry_counts, trace_ids, bodies,
                headers, signed_ats, organization_ids)
         WITH ORDINALITY AS b(delivery, received_at, reason, notification_id, event_type,
                              webhook_id, key_id, signed_content, retry_count, trace_id, body,
                              headers, signed_at, organization_id, ordinal)
    LEFT JOIN (
        SELECT r.delivery,
               bool_or(r.outcome = 'conflict') AS any_conflict,
               bool_or(r.outcome = 'appended') AS any_appended,
               (array_agg(r.position ORDER BY r.ordinal))[1] AS first_position
        FROM unnest(event_deliveries, outcomes, positions)
             WITH ORDINALITY AS r(delivery, outcome, position, ordinal)
        GROUP BY r.delivery
    ) AS d ON d.delivery = b.delivery
    ORDER BY b.ordinal;

    IF 'appended' = ANY (outcomes) THEN
        PERFORM pg_notify('ledger_events', '');  -- wakes projectors, delivered at commit
    END IF;
    RETURN QUERY SELECT r.outcome, r.position
                 FROM unnest(outcomes, positions) WITH ORDINALITY AS r(outcome, position, ordinal)
                 ORDER BY r.ordinal;
END
$$
;
