-- The rebuild's tables, handled with the owner's rights (SECURITY DEFINER): the service's
-- role runs rebuilds and owns no table, so it gets EXECUTE on this function, which does
-- these three steps to the invoice tables and their rebuild_* twins and nothing else.
--
--   'unindex'  drops every index of the rebuild tables but their primary keys, so that a
--              rebuild loads them without keeping a dozen indexes up to date row by row.
--   'index'    gives each rebuild table every index its live table has, built once over the
--              loaded rows under the name 'rebuild_' || the live index's name (cut to 46
--              bytes and ended by 16 of the live name's md5 where that would pass the 63
--              bytes PostgreSQL keeps, so two long names never make one), then ANALYZEs
--              it. Done before the swap: readers never wait for it.
--   'swap'     exchanges each live table and its twin by renaming them, in the caller's
--              transaction (readers wait only for the renames and what the caller does after
--              them), gives the indexes and primary keys their names back, and empties the
--              former live table. A live index with no rebuilt twin makes it fail, so a table
--              lacking an index is never swapped in.
CREATE OR REPLACE FUNCTION ledger_rebuild_tables(step text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    live text;
    rebuilt text;
    index_name text;
    definition text;
    rebuilt_definition text;
    rebuilt_index text;
    live_key text;
    rebuilt_key text;
BEGIN
    IF step NOT IN ('unindex', 'index', 'swap') THEN
        RAISE EXCEPTION 'ledger_rebuild_tables has no step %', step USING ERRCODE = '22023';
    END IF;
    FOREACH live IN ARRAY ARRAY['invoices', 'invoice_versions', 'invoice_collections'] LOOP
        rebuilt := 'rebuild_' || live;
        IF step IN ('unindex', 'index') THEN
            FOR index_name IN
                SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = rebuilt::regclass AND NOT i.indisprimary
            LOOP
                EXECUTE format('DROP INDEX %I', index_name);
            END LOOP;
        END IF;
        IF step = 'index' THEN
            FOR index_name, definition IN
                SELECT c.relname, pg_get_indexdef(i.indexrelid)
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = live::regclass AND NOT i.indisprimary
            LOOP
                rebuilt_index := 'rebuild_' || index_name;
                IF octet_length(rebuilt_index) > 63 THEN
                    rebuilt_index := left(rebuilt_index, 46) || '_' || left(md5(index_name), 16);
                END IF;
                -- "CREATE [UNIQUE] INDEX name ON public.table USING ...": the same index,
                -- named for the twin, on the twin.
                rebuilt_definition := regexp_replace(
                    definition,
                    '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ',
                    format('CREATE \1INDEX %I ON %I ', rebuilt_index, rebuilt)
                );
                IF rebuilt_definition = definition THEN
                    RAISE EXCEPTION 'cannot read the definition of index %', index_name;
                END IF;
                EXECUTE rebuilt_definition;
            END LOOP;
            EXECUTE format('ANALYZE %I', rebuilt);
        ELSIF step = 'swap' THEN
            EXECUTE format('ALTER TABLE %I RENAME TO %I', live, 'swapping_' || live);
            EXECUTE format('ALTER TABLE %I RENAME TO %I', rebuilt, live);
            EXECUTE format('ALTER TABLE %I RENAME TO %I', 'swapping_' || live, rebuilt);
            -- The former live table (now the twin) drops its indexes; the new live table's
            -- take their names.
            FOR index_name IN
                SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = rebuilt::regclass AND NOT i.indisprimary
            LOOP
                rebuilt_index := 'rebuild_' || index_name;
                IF octet_length(rebuilt_index) > 63 THEN
                    rebuilt_index := left(rebuilt_index, 46) || '_' || left(md5(index_name), 16);
                END IF;
                EXECUTE format('DROP INDEX %I', index_name);
                EXECUTE format('ALTER INDEX %I RENAME TO %I', rebuilt_index, index_name);
            END LOOP;
            SELECT conname INTO live_key FROM pg_constraint
                WHERE conrelid = live::regclass AND contype = 'p';
            SELECT conname INTO rebuilt_key FROM pg_constraint
                WHERE conrelid = rebuilt::regclass AND contype = 'p';
            EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I',
                           rebuilt, rebuilt_key, 'swapping_' || rebuilt_key);
            EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I',
                           live, live_key, rebuilt_key);
            EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I',
                           rebuilt, 'swapping_' || rebuilt_key, live_key);
            EXECUTE format('TRUNCATE %I', rebuilt);
        END IF;
    END LOOP;
END
$$;
