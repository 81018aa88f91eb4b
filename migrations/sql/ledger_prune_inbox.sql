-- Deletes up to rows_max inbox rows of one prunable kind received before cutoff, oldest
-- first, and says how many. The rule of what may be deleted lives here, with the table's
-- owner's rights (SECURITY DEFINER): the service's role gets EXECUTE on this function and
-- no DELETE on the inbox, so it can remove expired traces and nothing else. Dead letters
-- (rejected with a body) and conflicts are never deleted; events are not touched.
CREATE OR REPLACE FUNCTION ledger_prune_inbox(kind text, cutoff timestamptz, rows_max integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    deleted integer;
BEGIN
    IF rows_max < 1 OR rows_max > 10000 THEN
        RAISE EXCEPTION 'rows_max must be between 1 and 10000' USING ERRCODE = '22023';
    END IF;
    IF kind = 'refused' THEN
        DELETE FROM inbox WHERE id IN (
            SELECT id FROM inbox
            WHERE outcome = 'rejected' AND body IS NULL AND received_at < cutoff
            ORDER BY received_at LIMIT rows_max
        );
    ELSIF kind IN ('accepted', 'duplicate', 'ignored') THEN
        DELETE FROM inbox WHERE id IN (
            SELECT id FROM inbox
            WHERE outcome = kind AND received_at < cutoff
            ORDER BY received_at LIMIT rows_max
        );
    ELSE
        RAISE EXCEPTION 'inbox rows of kind % are never pruned', kind USING ERRCODE = '22023';
    END IF;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;
