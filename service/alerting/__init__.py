"""Telling people what waits for them: digests of dead letters and conflicts, signed as
Standard Webhooks and posted to a configured URL."""
