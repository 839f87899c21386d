"""Fetching a reference URL: what a storyboard may make shotflow download.

    url ─► http(s) only ─► resolve the host ─► every address public? ─► connect to that
            address (no second lookup) ─► 3xx: the same checks for the Location ─► 200:
            at most MAX_BYTES, within DEADLINE seconds overall ─► an image within the
            pixel limit (its header only)

Public means what ``ipaddress`` calls global: loopback, private, link-local (cloud
metadata at 169.254.169.254), shared, multicast and reserved addresses are refused
unless the user passes ``--allow-private-urls`` (or sets ``allow_private_urls`` in their
config): for the emulator and local servers. The connection goes to the address that
was checked (the Host header and TLS name stay the URL's), so a DNS answer that changes
between the check and the connection cannot redirect it. Proxies from the environment
are not used. Every failure names the URL and the reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from .errors import RefError

MAX_BYTES = 64 * 1024 * 1024
DEADLINE = 120.0  # seconds for one fetch, redirects included
CONNECT_TIMEOUT = 10.0
MAX_REDIRECTS = 5


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_global and not ip.is_multicast


async def fetch(
    url: str, *, allow_private: bool | None = None, deadline: float = DEADLINE, limit: int = MAX_BYTES
) -> bytes:
    """The bytes of the image at ``url`` (see the module docstring); RefError otherwise."""
    if allow_private is None:
        from .trust import policy

        allow_private = policy().allow_private_urls
    try:
        async with asyncio.timeout(deadline):
            return await _fetch(url, allow_private, limit)
    except TimeoutError:
        raise RefError(f"reference URL {url}: no complete answer within {deadline:g} s") from None


async def _fetch(url: str, allow_private: bool, limit: int) -> bytes:
    import httpx

    current = url
    timeout = httpx.Timeout(30.0, connect=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target, headers, extensions = await _pinned(url, current, allow_private)
            try:
                async with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = str(httpx.URL(current).join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise RefError(_at(url, current, f"the server answered HTTP {response.status_code}"))
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise RefError(_at(url, current, f"it is larger than {limit // 1048576} MiB"))
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise RefError(_at(url, current, f"it is larger than {limit // 1048576} MiB"))
                        chunks.append(chunk)
            except httpx.HTTPError as exc:
                said = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                raise RefError(_at(url, current, said)) from None
            data = b"".join(chunks)
            from .trust import Refused, image_header

            try:
                image_header(data, "download")
            except Refused as exc:
                raise RefError(_at(url, current, exc.message)) from None
            return data
    raise RefError(f"reference URL {url}: more than {MAX_REDIRECTS} redirects")


def _at(url: str, current: str, reason: str) -> str:
    via = f" (redirected to {current})" if current != url else ""
    return f"reference URL {url}{via}: {reason}"


async def _pinned(url: str, current: str, allow_private: bool):
    """The request for ``current``, sent to an address that was checked."""
    import httpx

    try:
        parsed = httpx.URL(current)
    except httpx.InvalidURL as exc:
        raise RefError(_at(url, current, f"not a valid URL ({exc})")) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise RefError(_at(url, current, "only http:// and https:// URLs are fetched"))
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise RefError(_at(url, current, f"cannot resolve {parsed.host} ({exc})")) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise RefError(_at(url, current, f"{parsed.host} has no address"))
    if not allow_private:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise RefError(
                _at(
                    url,
                    current,
                    f"{parsed.host} is a private, loopback or link-local address "
                    f"({private[0]}); shotflow fetches only public addresses",
                ),
                hint="pass --allow-private-urls (or set allow_private_urls in your user config) "
                "to fetch from a local server",
            )
    address = addresses[0]
    host = f"[{address}]" if ":" in address else address
    headers = {"Host": parsed.netloc.decode("ascii")}
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return parsed.copy_with(host=host.strip("[]")), headers, extensions
