"""Model adapters: the OpenAI-compatible client and the scripted model that replays a script."""
