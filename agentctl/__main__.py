"""`python -m agentctl` is the same program as the `agentctl` script."""

from agentctl.cli import main

main()
