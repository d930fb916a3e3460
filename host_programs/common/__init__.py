"""Helpers the host programs share: settings files, atomic writes and locks, topology."""
