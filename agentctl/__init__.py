"""agentctl: a command-line agent runner whose sessions are checkpointed to a local store.

Import nothing heavy here: `agentctl list` must start in a few hundred milliseconds.
"""

__version__ = "0.1.0"
