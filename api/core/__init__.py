"""Shared kernel: database, unit of work, outbox, jobs, identity, errors, crypto."""
