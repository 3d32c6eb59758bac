"""run_shell: a command in the workspace, with a time limit and bounded output.

Its side effects are unknowable, so it is never re-run after a crash and always needs approval
(unless --yes or the task's allow-list names it).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from agentctl.tools import SideEffect, ToolOutcome
from agentctl.tools.files import Workspace, bounded

TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RunShell:
    workspace: Workspace
    timeout: float = TIMEOUT_S
    name: str = "run_shell"
    description: str = "Run a shell command in the workspace and return its exit code and output."
    side_effect: SideEffect = SideEffect.EXEC

    @property
    def parameters(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        }

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        command = str(arguments["command"])
        try:
            done = subprocess.run(
                command,
                shell=True,
                cwd=self.workspace.root,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return ToolOutcome(f"timed out after {self.timeout:.0f} s: {command}", is_error=True)
        output = f"exit {done.returncode}\n{done.stdout}"
        if done.stderr:
            output += f"\n[stderr]\n{done.stderr}"
        return ToolOutcome(bounded(output), is_error=done.returncode != 0)
