"""Secrets masked in what is shown or stored: a URL's password and secret-looking query
parameters, and every URL inside an error text. At the bottom of the import graph, so stores
and adapters mask without reading the settings."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that carry credentials in the URLs of proxies and hosted endpoints.
_SECRET_PARAM = re.compile(r"key|token|secret|passw|sig|auth|credential", re.IGNORECASE)


def redact_url(url: str, *, keep_user: bool = False) -> str:
    """`url` with its password and secret-looking query parameters masked, for display and
    for anything stored: `http://user:****@host/v1?api-key=****`. Userinfo with no password
    is masked whole (a model server's URL may carry its key there), unless `keep_user`: a
    store's URL, whose user name is a database role the user needs to paste it back."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            if ":" in userinfo:
                netloc = f"{user}:****@{host}"
            else:
                netloc = f"{user}@{host}" if keep_user else f"****@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            masked = [(k, "****" if _SECRET_PARAM.search(k) else v) for k, v in pairs]
            query = urlencode(masked, safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(a URL that cannot be parsed)"


def pasteable_url(shown: str) -> str | None:
    """A store URL as `redact_url(..., keep_user=True)` showed it, made fit to paste into a
    command: the masked password left out (libpq then takes it from PGPASSWORD or
    ~/.pgpass). None when more than the password was masked."""
    try:
        parts = urlsplit(shown)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if userinfo == "****" or userinfo.split(":", 1)[0] == "****":
                return None
            netloc = f"{userinfo.removesuffix(':****')}@{host}"
        if "****" in netloc or "****" in parts.query:
            return None
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return None


_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_SECRET_IN_QUERY = re.compile(
    r"([?&;][^=&\s]*(?:key|token|secret|passw|sig|auth|credential)[^=&\s]*=)[^&\s'\"]+",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """An error text (ours or a server's, which may echo the URL it was sent) with every URL's
    credentials and every secret-looking query parameter masked."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    return _SECRET_IN_QUERY.sub(lambda m: m.group(1) + "****", text)


def mask(value: str) -> str:
    """Enough of a secret to tell two keys apart, not enough to use one."""
    return "****" + value[-4:] if len(value) > 12 else "****"
