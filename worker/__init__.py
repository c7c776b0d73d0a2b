"""Linli's background worker: Dramatiq actors, the outbox relay and the scheduler."""
