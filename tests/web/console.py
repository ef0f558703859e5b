"""Driving console forms over HTTP the way a browser does: sign in, read the CSRF field
from the page, post the form."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from httpx import Response

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def sign_in(client: TestClient, token: str) -> None:
    """Post ``token`` to the sign-in form; the client keeps the session cookie."""
    response = client.post("/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text


def csrf_of(html: str) -> str:
    """The CSRF field of the first form on a page."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no form"
    return found.group(1)


def submit(client: TestClient, page: str, action: str, fields: dict[str, str]) -> Response:
    """Open ``page``, then post ``fields`` to ``action`` with the page's CSRF field."""
    html = client.get(page).text
    return client.post(action, data={"csrf": csrf_of(html), **fields}, follow_redirects=False)
