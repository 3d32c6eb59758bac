"""Fresh-process reads: `python -m bench.probe SUBJECT PATH` prints a JSON object of seconds.

Run in a new interpreter so nothing is warm but the OS page cache, as for a user who opens a
session in another terminal. Imports happen before the clocks start: start-up cost is measured
separately (bench/startup.py).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from typing import Any

SESSION = "bench0001"


def timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def probe_agentctl(url: str) -> dict[str, float]:
    import agentctl.domain.session
    import agentctl.store.codec
    import agentctl.store.listing
    import agentctl.store.ready  # noqa: F401  (imported with the runner, before any session)
    from agentctl.store import open_store

    store = open_store(url)
    # The head: lifecycle state, task state, usage (what `resume` and `show` need first).
    load_s, head = timed(lambda: store.head(SESSION))
    history_s, history = timed(lambda: store.history(SESSION))
    conversation_s, messages = timed(lambda: [m.content for m in store.load(SESSION).messages])
    request_s, text = timed(lambda: agentctl_request(store))
    assert json.loads(text) == _wire(store.load(SESSION).messages)
    assert len(history) > 1
    assert head.task
    assert messages
    store.close()
    return {
        "load_head": load_s,
        "history": history_s,
        "conversation": conversation_s,
        "request": request_s,
    }


def _wire(messages: Any) -> Any:
    from agentctl.llm.openai_chat import wire_conversation

    return wire_conversation(messages)


def agentctl_request(store: Any) -> str:
    """The conversation as the next request sends it (runner._send): kept ready by the run
    that stopped, or built from the messages."""
    from agentctl.llm.openai_chat import wire_conversation
    from agentctl.store.ready import load_head

    session = load_head(store, SESSION)
    kept = session.ready.prepared if session.ready is not None else None
    if kept is not None:
        return kept.text  # as the runner sends it (the OpenAI adapter's format)
    wire = wire_conversation(session.messages)
    return json.dumps(wire, ensure_ascii=False, separators=(",", ":"))


def as_request(messages: list[dict[str, Any]]) -> str:
    """A peer's messages as a request's JSON array (serialised as the openai SDK does)."""
    return json.dumps(messages, ensure_ascii=False, separators=(",", ":"))


def probe_langgraph(path: str) -> dict[str, float]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False)
    saver = SqliteSaver(conn)
    config = {"configurable": {"thread_id": SESSION, "checkpoint_ns": ""}}
    load_s, head = timed(lambda: saver.get_tuple(config))
    # What `agentctl history` shows: id, parent, step/event of every checkpoint.
    history_s, history = timed(
        lambda: [(t.config, t.parent_config, t.metadata.get("step")) for t in saver.list(config)]
    )
    conversation_s, messages = timed(
        lambda: [
            m["content"] for m in saver.get_tuple(config).checkpoint["channel_values"]["messages"]
        ]  # type: ignore[union-attr]
    )
    request_s, _ = timed(
        lambda: as_request(
            saver.get_tuple(config).checkpoint["channel_values"]["messages"]  # type: ignore[union-attr]
        )
    )
    assert head is not None
    assert history
    assert messages
    conn.close()
    return {
        "load_head": load_s,
        "history": history_s,
        "conversation": conversation_s,
        "request": request_s,
    }


def probe_raw(path: str) -> dict[str, float]:
    db = sqlite3.connect(path)
    load_s, _ = timed(
        lambda: db.execute("SELECT body FROM log ORDER BY id DESC LIMIT 1").fetchone()
    )
    history_s, _ = timed(lambda: db.execute("SELECT id FROM log").fetchall())
    conversation_s, _ = timed(
        lambda: [json.loads(b) for (b,) in db.execute("SELECT body FROM log")]
    )
    request_s, _ = timed(
        lambda: as_request(
            [json.loads(b)["message"] for (b,) in db.execute("SELECT body FROM log")]
        )
    )
    db.close()
    return {
        "load_head": load_s,
        "history": history_s,
        "conversation": conversation_s,
        "request": request_s,
    }


def main() -> None:
    name, path = sys.argv[1], sys.argv[2]
    if name == "agentctl-sqlite":
        result = probe_agentctl(f"sqlite://{path}")
    elif name == "agentctl-jsonl":
        result = probe_agentctl(f"json://{path}")
    elif name == "langgraph-sqlite":
        result = probe_langgraph(path)
    else:
        result = probe_raw(path)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
