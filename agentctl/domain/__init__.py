"""The domain model: the lifecycle, the persisted state, the checkpoint kinds, task files and
the records the use cases return (pure, no I/O)."""
