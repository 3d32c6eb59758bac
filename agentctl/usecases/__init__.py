"""The use cases the command line and the workers call: runs, sessions, rollback, transfer,
verify, trust, settings."""
