"""The serving process's background workers: the runner that starts and stops them, and the
loops it runs beside the server (projector, reconciler, inbox retention, backlog gauges)."""
