"""The template toolkit: the original E2B template system's collection and Python API."""
