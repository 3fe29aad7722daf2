"""GraphiQL, served by the gateway itself in development mode: no CDN, so it works offline.

`static/` holds the vendored builds (GraphiQL 3 UMD, React, the explorer plugin) and their
licences; `scripts/vendor-graphiql` re-creates it from pinned npm versions. `page.py` builds the
HTML that GET /graphql answers a browser with. In production neither exists (404).
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from switchboard.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/graphiql/static"


def routes(settings: Settings) -> list[BaseRoute]:
    """The assets' route in development mode; none in production."""
    if not settings.development:
        return []
    return [Mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="graphiql-static")]
