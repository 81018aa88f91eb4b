"""Read models derived from the event store: the projector, rebuilds and report queries."""
