"""The console's Content-Security-Policy: scripts and styles only from /admin/static (htmx is
vendored: the console works air-gapped), forms only to the console itself, never framed."""

from __future__ import annotations

from collections.abc import Iterable

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def with_form_targets(origins: Iterable[str]) -> str:
    """CSP with forms allowed to go on to `origins` too (browsers hold a form's redirects to
    `form-action`: CSP 3)."""
    allowed = " ".join(["'self'", *sorted(set(origins))])
    return CSP.replace("form-action 'self'", f"form-action {allowed}")
