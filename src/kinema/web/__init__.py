"""The web studio: server-rendered pages (Jinja2, autoescaped) served by ``kinema serve`` itself at ``/``.

Pages sign in with the same browser session and CSRF token as the API (``kinema.services.accounts``),
call the same services as the API routes, and load their script and style from this package only
(``web/static``), under the page CSP (``script-src 'self'``, no inline script).
"""
