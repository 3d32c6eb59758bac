"""Settings: built once from flags, environment and platform directories, then passed down.

Nothing below service.py reads os.environ; it receives these values. The API key is held here
only to hand to the model client: it is never written to a store, an export or a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP = "agentctl"


@dataclass(frozen=True)
class Settings:
    home: Path  # data directory: the default store lives here
    store_url: str
    model: str | None
    base_url: str | None
    api_key: str | None
    scripted_delay: float
    scripted_log: Path | None
    debug: bool

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        store: str | None = None,
        model: str | None = None,
    ) -> Settings:
        env = os.environ if env is None else env
        if env.get("AGENTCTL_HOME"):
            home = Path(env["AGENTCTL_HOME"]).expanduser()
        else:
            import platformdirs

            home = Path(platformdirs.user_data_dir(APP))
        store_url = (
            store or env.get("AGENTCTL_STORE") or f"sqlite://{(home / 'agentctl.db').absolute()}"
        )
        return cls(
            home=home,
            store_url=store_url,
            model=model or env.get("AGENTCTL_MODEL") or None,
            base_url=env.get("OPENAI_BASE_URL") or None,
            api_key=env.get("OPENAI_API_KEY") or None,
            scripted_delay=_float(env.get("AGENTCTL_SCRIPTED_DELAY"), "AGENTCTL_SCRIPTED_DELAY"),
            scripted_log=Path(env["AGENTCTL_SCRIPTED_LOG"])
            if env.get("AGENTCTL_SCRIPTED_LOG")
            else None,
            debug=env.get("AGENTCTL_DEBUG", "") not in ("", "0", "false"),
        )


def _float(value: str | None, name: str) -> float:
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        from agentctl.errors import UsageError

        raise UsageError(f"{name} must be a number of seconds, not {value!r}") from None
