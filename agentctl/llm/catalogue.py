"""What agentctl knows of models by name, in one place: each one's context window, the request
field that bounds its reply, and its price. A model not listed gets the defaults: a window of
DEFAULT_WINDOW (set context_window for it), `max_tokens` on servers other than the OpenAI API,
and no price (reported unpriced, never guessed). The settings' [prices] add to and override the
prices here.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_WINDOW = 8192  # for models we do not know: local servers often run 4-8K by default

# Published context windows, matched by the longest prefix of the model name.
WINDOWS = {
    "gpt-3.5-turbo": 16_385,
    "gpt-4": 8_192,
    "gpt-4-turbo": 128_000,
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
}

# Dollars per million tokens (input, output), as OpenAI published them on PRICES_TAKEN; matched
# by the exact name.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "scripted": (0.0, 0.0),
}
PRICES_TAKEN = "2026-11-01"

REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")  # their hidden reasoning counts against a limit


def window(model: str) -> tuple[int, str] | None:
    """The model's published window and the prefix that named it, or None for a model not
    listed."""
    for prefix in sorted(WINDOWS, key=len, reverse=True):
        if model.startswith(prefix):
            return WINDOWS[prefix], prefix
    return None


def price(
    model: str, configured: Mapping[str, tuple[float, float]] | None = None
) -> tuple[float, float] | None:
    """Dollars per million tokens (input, output): `configured` (the settings' [prices]), else
    the list."""
    if configured and model in configured:
        return configured[model]
    return PRICES.get(model)


def output_limit_field(base_url: str | None, model: str = "") -> str | None:
    """The request field that bounds a reply, or None for no bound. The OpenAI API takes
    `max_completion_tokens` (`max_tokens` is refused by its reasoning models, and those get no
    bound at all: their hidden reasoning would eat it); every other OpenAI-compatible server
    (llama.cpp, llama-cpp-python, vLLM, Ollama, LM Studio, sglang) takes `max_tokens`."""
    from urllib.parse import urlsplit

    host = urlsplit(base_url).hostname if base_url else "api.openai.com"
    if host != "api.openai.com":
        return "max_tokens"
    return None if model.startswith(REASONING_MODELS) else "max_completion_tokens"
