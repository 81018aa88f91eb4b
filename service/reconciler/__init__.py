"""Filling the gaps webhooks leave, by asking Cybersource: REST client, gap rules, sweeps."""
