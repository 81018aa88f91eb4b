"""The read models: leases and checkpoints (leases.py), one module per view, each with
``apply(connection, changes)`` and ``recount(connection)``, registered once (registry.py),
and the store the projector and the rebuild write through (read_model_store.py)."""
