"""`make demo`: the sandbox and the ledger together on a throwaway SQLite database, a few
invoices driven through them, a dead letter, a reconciliation, and the URLs to open."""
