"""The event store: the interface and shared types (base.py), one module per engine owning
its SQL (sqlite.py, postgres.py), the chooser (for_engine.py) and group commit
(group_commit.py). Empty on purpose: importing the interface loads no engine."""
