"""Editing what outlives sessions: the user profile (preferences) and the settings file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.config import Settings
from agentctl.domain.records import ConfigRow
from agentctl.errors import UsageError
from agentctl.usecases.common import opened_store

if TYPE_CHECKING:
    from agentctl.domain.session import UserProfile


def show_profile(settings: Settings) -> UserProfile:
    with opened_store(settings) as store:
        return store.load_profile()


def set_preference(settings: Settings, key: str, value: str | None) -> UserProfile:
    """Set (or with value None, remove) one preference."""
    from agentctl.loop.control_tools import preference

    key = key.strip()
    if not key:
        raise UsageError("a preference needs a name")
    if value is not None:
        try:  # the same bounds as the agent's `remember`: one short line of data
            key, value = preference({"key": key, "value": value})
        except ValueError as exc:
            raise UsageError(f"preference {key!r}: {exc}") from None

    def change(profile: UserProfile) -> UserProfile:
        if value is not None:
            return profile.remember(key, value)
        if key not in profile.preferences:
            known = ", ".join(sorted(profile.preferences)) or "none"
            raise UsageError(f"no preference {key!r} to unset (known: {known})")
        return profile.forget(key)

    with opened_store(settings, create=True) as store:
        return store.update_profile(change)


# -- settings file --------------------------------------------------------------------------


def show_config(settings: Settings) -> tuple[Path, list[ConfigRow]]:
    """Every setting with the value in effect and where it came from; secrets masked."""
    from agentctl import config
    from agentctl.config import KEYS, shown_value

    # What is in effect when a key is set nowhere: a value with the source "default".
    defaults: dict[str, object] = {
        "base_url": "https://api.openai.com/v1",
        "timeout": config.DEFAULT_TIMEOUT,
        "retries": config.DEFAULT_RETRIES,
        "context_window": "the model's own",
        "context_strategy": config.DEFAULT_STRATEGY,
        "snapshot_max_file": config.DEFAULT_SNAPSHOT_MAX_FILE,
        "snapshot_max_capture": config.DEFAULT_SNAPSHOT_MAX_CAPTURE,
        "preview_lines": config.DEFAULT_PREVIEW_LINES,
        "sandbox": config.DEFAULT_SANDBOX,
        "network": "false",
        "approval": config.DEFAULT_APPROVAL,
    }
    effective: dict[str, object] = {
        "model": settings.default_model,
        "base_url": settings.base_url,
        "api_key": settings.api_key,
        "store": settings.store_url,
        "timeout": settings.timeout,
        "context_window": settings.context_window,
        "context_strategy": settings.context_strategy,
        "retries": settings.retries,
        "snapshot_max_file": settings.snapshot_max_file,
        "snapshot_max_capture": settings.snapshot_max_capture,
        "preview_lines": settings.preview_lines,
        "sandbox": settings.sandbox,
        "network": None if settings.network is None else str(settings.network).lower(),
        "approval": settings.approval,
    }
    rows = []
    for key in KEYS.values():
        value = effective[key.name]
        if value is None and key.name in defaults:
            value = defaults[key.name]
            source = "default"
        else:
            source = settings.sources.get(key.name, "default" if value is not None else "not set")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 120, not 120.0
        text = None if value is None else shown_value(key.name, str(value))
        rows.append(ConfigRow(key.name, text, source))
    return settings.config_path, rows


def set_config(settings: Settings, key: str, value: str | None) -> tuple[Path, str | None]:
    """Set (or with value None, remove) one key of the settings file. Returns the file and the
    value as it may be shown (secrets masked)."""
    from agentctl.config import KEYS, parse_value, read_file, shown_value, write_file

    if key not in KEYS:
        raise UsageError(f"unknown setting {key!r} (known: {', '.join(KEYS)})")
    path = settings.config_path
    values = read_file(path)
    if value is None:
        if key not in values:
            raise UsageError(f"{key} is not set in {path}")
        del values[key]
    else:
        values[key] = parse_value(key, value)
    try:
        write_file(path, values)
    except OSError as exc:
        raise UsageError(f"cannot write settings file {path}: {exc.strerror or exc}") from None
    shown = values.get(key)
    shown = str(shown).lower() if isinstance(shown, bool) else shown
    return path, None if value is None else shown_value(key, str(shown))
