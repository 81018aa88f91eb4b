"""What people and programs talk to: the query API, the console and the command line, each
apart (no front imports another), sharing only authorization, API errors and request metrics."""
