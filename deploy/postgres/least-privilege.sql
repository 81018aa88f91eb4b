-- Least privilege for invoice-ledger on PostgreSQL.
--
-- Two roles: the owner runs `invoice-ledger migrate` (creates tables, triggers and the
-- ledger_append_columns function); the service role, which `invoice-ledger serve` connects as, can
-- only read and append events and deliveries: it cannot UPDATE, DELETE or TRUNCATE them, nor
-- change the schema, so even a compromised service cannot rewrite history (the triggers
-- refuse it as well). It may rewrite the read models, which are derived from the events, and
-- open, sign out of and delete console sessions.
--
-- Run as a superuser, once per database, after the first migration:
--   psql -v ON_ERROR_STOP=1 -d ledger -f deploy/postgres/least-privilege.sql
-- then set the password of invoice_ledger_service (ALTER ROLE … PASSWORD …) from your secret
-- store and give the service LEDGER_DATABASE_URL=postgresql://invoice_ledger_service@host/ledger.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'invoice_ledger_service') THEN
        CREATE ROLE invoice_ledger_service LOGIN;
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM invoice_ledger_service;
GRANT USAGE ON SCHEMA public TO invoice_ledger_service;
GRANT SELECT, INSERT ON events, inbox, delivery_replays, delivery_resolutions, delivery_notices
    TO invoice_ledger_service;
-- Accounting exports are append-only: an export and its lines are never changed or deleted.
GRANT SELECT, INSERT ON accounting_exports, accounting_export_lines TO invoice_ledger_service;
GRANT SELECT ON alembic_version TO invoice_ledger_service;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO invoice_ledger_service;
GRANT EXECUTE ON FUNCTION ledger_append_columns TO invoice_ledger_service;
-- Retention deletes expired inbox rows through this function only (no DELETE on inbox).
GRANT EXECUTE ON FUNCTION ledger_prune_inbox(text, timestamptz, integer) TO invoice_ledger_service;
-- A rebuild indexes its tables and renames them into place through this function only
-- (the service's role owns no table, so it could do neither itself).
GRANT EXECUTE ON FUNCTION ledger_rebuild_tables(text) TO invoice_ledger_service;
-- Read models are derived and rebuildable: the projector and `rebuild` rewrite them.
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON
    invoices, invoice_versions, invoice_collections, invoice_totals,
    rebuild_invoices, rebuild_invoice_versions, rebuild_invoice_collections,
    invoice_fold_snapshots, projection_checkpoints,
    report_open_balance_changes, report_open_balance_totals, report_daily_collections
    TO invoice_ledger_service;
-- Console sessions: opened at sign-in, marked at sign-out (revoked_at, no other column may
-- change: a session cannot be prolonged), deleted once expired.
GRANT SELECT, INSERT, DELETE ON console_sessions TO invoice_ledger_service;
GRANT UPDATE (revoked_at) ON console_sessions TO invoice_ledger_service;
-- Personal data (docs/personal-data.md): appends make a payer's data key, reads open it, and
-- `erase` deletes it and redacts the inbox bodies that named the payer (no other inbox column
-- may change). `personal-data encrypt` seals facts recorded in clear: run it as the owner.
GRANT SELECT, INSERT, DELETE ON personal_data_keys TO invoice_ledger_service;
GRANT UPDATE (body, body_redacted_at) ON inbox TO invoice_ledger_service;
