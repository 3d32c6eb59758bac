"""The agent loop: what to do next, tool calls, the journal that checkpoints each action, and
the context budget."""
