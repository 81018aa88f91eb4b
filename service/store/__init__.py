"""Persistence: the schema, the append-only event store and the inbox of deliveries."""
