"""Receiving Cybersource notifications: signature, envelope parsing and the HTTP endpoint."""
