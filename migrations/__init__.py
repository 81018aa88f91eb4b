"""The Alembic environment and revisions: the only way a database gets its schema.

Shipped in the wheel as a package of its own, so an installed service finds it through
``importlib.resources``. Nothing here imports the service: a revision's SQL is frozen, and
a later change of the service must not change what an old revision does.
"""
