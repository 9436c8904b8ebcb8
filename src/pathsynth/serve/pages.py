"""Rendering the web app's pages: the templates and what every page is given."""

from __future__ import annotations

from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from pathsynth.serve.security import CSRF_FIELD, csrf_token, operator_allowed


def page_templates() -> Jinja2Templates:
    """The app's Jinja templates (autoescaped, strict), with the ``pct`` and ``num`` filters."""
    folder = resources.files("pathsynth.serve").joinpath("templates")
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    return Jinja2Templates(env=env)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"  # NaN -> n/a


def _num(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A page from ``template`` with what every page needs (CSRF token, operator flag)."""
    templates: Jinja2Templates = request.app.state.templates
    full = {
        "csrf_token": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "operator": operator_allowed(request),
        **context,
    }
    return templates.TemplateResponse(
        request, template, full, status_code=status_code, headers=headers
    )
