"""A local Cybersource: invoicing REST API with HTTP Signature checks, for development and tests."""
