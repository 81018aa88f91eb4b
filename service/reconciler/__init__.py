"""Filling the gaps webhooks leave, by asking Cybersource: REST client and HTTP Signature."""
