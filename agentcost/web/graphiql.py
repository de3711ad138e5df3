"""GraphiQL without a CDN: Strawberry's own GraphiQL page, pointed at files the app serves.

Strawberry's template loads React, GraphiQL and its explorer plugin from unpkg with SRI hashes.
The asset list is read from that template (so a Strawberry upgrade that moves GraphiQL to new
versions is followed automatically): ``scripts/fetch-graphiql-assets`` fetches exactly those files
into ``vendor/`` (git-ignored) and checks them, and the page served here references them under the
app's own URL, keeping each ``integrity`` attribute so the browser checks them again.
"""

import hashlib
import html
import re
from base64 import b64encode
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

CDN = "https://unpkg.com/"
VENDOR_DIR = Path(__file__).parent / "vendor"
FETCH_COMMAND = "scripts/fetch-graphiql-assets"

_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.DOTALL)
_ATTR = re.compile(r'([a-zA-Z][\w-]*)="([^"]*)"')
_SPEC = re.compile(r"^((?:@[^/@]+/)?[^/@]+)@([^/]+)/(.+)$")


@dataclass(frozen=True, slots=True)
class Asset:
    """One file the template loads: ``package@version/path`` on the CDN, and its SRI hash."""

    url: str
    package: str
    version: str
    path: str
    integrity: str | None

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def local_path(self) -> str:
        """Where it lives under vendor/ and under the assets URL: the CDN path, versioned."""
        return f"{self.spec}/{self.path}"

    def matches(self, content: bytes) -> bool:
        """True when the bytes satisfy the template's SRI hash (or it gives none)."""
        if self.integrity is None:
            return True
        algorithm, _, expected = self.integrity.partition("-")
        digest = b64encode(hashlib.new(algorithm, content).digest()).decode()
        return digest == expected


def template() -> str:
    return get_graphql_ide_html(graphql_ide="graphiql")


@cache
def referenced_assets() -> tuple[Asset, ...]:
    """Every CDN file of Strawberry's GraphiQL template, in page order."""
    assets = []
    for tag in _TAG.findall(template()):
        attrs = dict(_ATTR.findall(tag))
        url = attrs.get("src") or attrs.get("href") or ""
        if not url.startswith(CDN):
            continue
        match = _SPEC.match(url.removeprefix(CDN))
        if match is None:
            raise ValueError(f"unexpected asset URL in Strawberry's GraphiQL template: {url}")
        package, version, path = match.groups()
        assets.append(Asset(url, package, version, path, attrs.get("integrity")))
    return tuple(assets)


def missing_assets(vendor_dir: Path) -> list[Asset]:
    return [a for a in referenced_assets() if not (vendor_dir / a.local_path).is_file()]


@dataclass(frozen=True, slots=True)
class Page:
    html: str
    complete: bool


def render_page(vendor_dir: Path, *, assets_url: str) -> Page:
    """The GraphiQL page on local assets, or, when they are missing, how to fetch them."""
    missing = missing_assets(vendor_dir)
    if missing:
        return Page(_help_page(missing), complete=False)
    return Page(_local_page(assets_url), complete=True)


@cache
def _local_page(assets_url: str) -> str:
    page = template()
    for asset in referenced_assets():
        page = page.replace(asset.url, f"{assets_url}/{asset.local_path}")
    return page


def _help_page(missing: list[Asset]) -> str:
    items = "".join(f"<li><code>{html.escape(a.local_path)}</code></li>" for a in missing)
    return f"""<!doctype html>
<html>
  <head><meta charset="utf-8"><title>GraphiQL assets missing</title></head>
  <body style="font-family: sans-serif; max-width: 48rem; margin: 2rem auto">
    <h1>GraphiQL's JavaScript and CSS are not installed</h1>
    <p>The service serves GraphiQL from its own files, never from a CDN. Fetch them once
    (from the npm registry, checked against their integrity hashes) with:</p>
    <pre>make setup</pre>
    <p>or, in a checkout whose virtualenv already exists:</p>
    <pre>{FETCH_COMMAND}</pre>
    <p>then reload this page. The GraphQL API itself works meanwhile: POST queries to this
    URL.</p>
    <p>Missing files (under <code>agentcost/web/vendor/</code>):</p>
    <ul>{items}</ul>
  </body>
</html>
"""


def asset_file(vendor_dir: Path, local_path: str) -> Path | None:
    """The vendored file for a path the page references; None for anything else."""
    for asset in referenced_assets():
        if asset.local_path == local_path:
            path = vendor_dir / asset.local_path
            return path if path.is_file() else None
    return None
