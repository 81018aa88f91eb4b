"""The operator console: server-rendered pages over deliveries, invoices and reports."""
