"""`python -m agentctl` is the same program as the `agentctl` script."""

from agentctl.terminal.cli import main

main()
