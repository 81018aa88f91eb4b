"""Pure domain: money, event types and invoice rules.

Imports nothing of the service and does no I/O.
"""
