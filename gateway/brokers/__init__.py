"""Brokers: how nodes share rooms, logs and sessions (in memory, or Redis)."""
