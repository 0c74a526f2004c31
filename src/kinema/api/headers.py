"""The security headers every response carries (a module of its own: the middleware and the error handlers
that answer from outside the middleware stack both use them)."""

from __future__ import annotations

# JSON, media and text responses load nothing, run nothing and may not be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Pages (the API docs, the retention policy) load their scripts, styles and images from this origin
# only: no inline script, no CDN, no eval.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def security_headers(content_type: str, *, https: bool) -> dict[str, str]:
    """The headers for one response: a strict CSP (looser for HTML pages, still 'self' only), no
    sniffing, no framing, no referrer, and HSTS when the client reached us over https."""
    page = content_type.split(";")[0].strip().lower() == "text/html"
    headers = {**COMMON_HEADERS, "content-security-policy": PAGE_CSP if page else API_CSP}
    if https:
        headers["strict-transport-security"] = HSTS
    return headers
