"""Linli: the backend a residents' committee runs its services on."""
