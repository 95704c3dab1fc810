"""Server-rendered pages: one Jinja2 environment over `console/templates/`, autoescaped.

`render(request, "page.html", status_code=200, **context)` is how every route answers with HTML.
Each page extends `base.html` (nav, the user and role, messages, the CSRF token for forms and
for `console.js`'s fetch helper) and fills `{% block title %}` and `{% block content %}`. Every
asset is served by the app itself from `/static`: no page loads anything from the internet.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from campaign_orchestrator.console.catalog import TITLES
from campaign_orchestrator.console.security import CSRF_FIELD, csrf_token, session_user

environment = Environment(
    loader=PackageLoader("campaign_orchestrator.console", "templates"),
    autoescape=True,  # every value is escaped unless a template says otherwise (none does)
    undefined=StrictUndefined,  # a typo in a template is an error in the tests, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.policies["json.dumps_kwargs"] = {"sort_keys": False}  # `tojson` keeps a rule's key order

NAV = [("segments", TITLES["segments"]), ("lifecycles", TITLES["lifecycles"]), ("templates", TITLES["templates"])]
NAV += [("campaigns", TITLES["campaigns"])]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    user = session_user(request)
    html = environment.get_template(template).render(
        request=request,
        user=user,
        nav=NAV,
        csrf_field=CSRF_FIELD,
        csrf=csrf_token(request),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})
