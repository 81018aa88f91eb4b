"""The read-only query API for dashboards: invoices, their audit trail and reports."""
