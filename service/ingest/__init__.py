"""Receiving Cybersource notifications: the receiver, reading a delivery, replay, corrections."""
