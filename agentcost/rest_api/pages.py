"""Listings keep the guide's plain JSON list as the body; the next page travels in headers."""

from fastapi import Request, Response

NEXT_CURSOR = "X-Next-Cursor"


def link_next_page(request: Request, response: Response, cursor: str | None) -> None:
    if cursor is None:
        return
    response.headers[NEXT_CURSOR] = cursor
    url = request.url.include_query_params(cursor=cursor)
    response.headers["Link"] = f'<{url}>; rel="next"'
