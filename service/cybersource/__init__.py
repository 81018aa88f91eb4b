"""Cybersource's protocol, shared by the receiver, the REST client and the sandbox: HTTP
Signature, webhook signing and verification, JS-compatible JSON, and the shapes of its
notifications and answers.

Imports only the standard library, third-party libraries and the domain's vocabulary.
"""
