"""Benchmarks of agentctl's stores against LangGraph's SqliteSaver and the raw-SQLite limit.

Not part of the package (not shipped in the wheel). Run with `python -m bench` (see --help).
"""
