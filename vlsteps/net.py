"""What every network call shares: one total deadline that a user can set, and which addresses a call may reach.

`VLSTEPS_TIMEOUT` (seconds) caps each whole call, from the first connection attempt to the last byte, so a
server that accepts a connection and then stalls or trickles costs at most that long.

`fetch` is the one HTTP GET that enforces both. It drives the standard library's http.client over sockets it
connected itself: the timeouts of requests/urllib3 bound each read, not the call, and they would look a name up
again after it was checked.
"""
from __future__ import annotations

import functools
import http.client
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

ENV_TIMEOUT = "VLSTEPS_TIMEOUT"
ENV_ALLOW_HOSTS = "VLSTEPS_ALLOW_HOSTS"
DEFAULT_TIMEOUT_S = 30.0
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
URL_SAFE = "/%:@!$&'()*+,;=~"   # what quote() must leave alone in a URL path: percent escapes and delimiters
USER_AGENT = "vlsteps (+https://github.com/vlsteps/vlsteps)"   # some image hosts refuse anonymous clients
# Metadata services hand out the machine's cloud credentials: AWS, GCP, Azure, OpenStack; AWS over IPv6; Alibaba.
METADATA_ADDRESSES = frozenset(map(ipaddress.ip_address, ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")))
NAT64 = ipaddress.ip_network("64:ff9b::/96")   # 64:ff9b::a.b.c.d is translated to, and so reaches, a.b.c.d
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


class FetchError(ValueError):
    """A URL could not be fetched; the message says why and what to do."""


def timeout_s(explicit: float | None = None) -> float:
    """The total deadline for one network call: `explicit` if given, else `VLSTEPS_TIMEOUT`, else 30 s."""
    if explicit is not None:
        value, source = explicit, "timeout"
    else:
        value, source = os.environ.get(ENV_TIMEOUT) or DEFAULT_TIMEOUT_S, ENV_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}={value!r} is not a number of seconds (e.g. {ENV_TIMEOUT}=30)") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{source}={value!r} must be a positive, finite number of seconds")
    return seconds


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a fetch may reach: checked on every address a host resolves to, on every redirect.

    The default reaches everything: a notebook fetches whatever its reader asks for. Code that fetches URLs other
    people send (a web service) passes `AddressPolicy(allow_private=False)` or `AddressPolicy.from_env()`, so a
    URL cannot reach the machine itself, its networks or the cloud metadata service (server-side request forgery).
    "Private" there means every address that is not public: loopback, private, link-local, unspecified, multicast,
    reserved, metadata, also inside IPv4-mapped and NAT64 IPv6 addresses. `allow` names host names (exact) and
    networks ("10.1.0.0/16", "::1") that stay reachable anyway.
    """
    allow_private: bool = True
    allow: tuple = ()

    def __post_init__(self):
        if isinstance(self.allow, str):
            raise TypeError(f"allow is a list of host names and networks, not the string {self.allow!r}")
        object.__setattr__(self, "allow", tuple(_allowed(entry) for entry in self.allow))

    @classmethod
    def from_env(cls) -> AddressPolicy:
        """Public addresses only, plus the hosts and networks in VLSTEPS_ALLOW_HOSTS (comma or space separated)."""
        entries = [entry for entry in re.split(r"[\s,]+", os.environ.get(ENV_ALLOW_HOSTS, "")) if entry]
        try:
            return cls(allow_private=False, allow=entries)
        except ValueError as e:
            raise ValueError(f"{ENV_ALLOW_HOSTS}: {e}") from None

    def refusal(self, host: str, address) -> str | None:
        """Why `host` may not be reached at `address`, as "a loopback address" and the like; None if it may."""
        if self.allow_private:
            return None
        host, address = host.lower().rstrip("."), _unwrapped(ipaddress.ip_address(address))
        if any(entry == host if isinstance(entry, str) else address in entry for entry in self.allow):
            return None
        return _non_public(address)


def _allowed(entry):
    """An allow-list entry as a network, or else as a lower-case host name."""
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        pass
    name = str(entry).lower().rstrip(".")
    if not _HOST_NAME.fullmatch(name):
        raise ValueError(f"{entry!r} is neither a host name (images.example.org) nor a network (10.1.0.0/16)")
    return name


def _unwrapped(address):
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address reaches."""
    if address.version == 6:
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _non_public(address) -> str | None:
    if address in METADATA_ADDRESSES:
        return "the cloud metadata service"
    for kind, article in (("loopback", "a"), ("unspecified", "an"), ("link_local", "a"), ("multicast", "a"),
                          ("reserved", "a"), ("private", "a")):
        if getattr(address, f"is_{kind}"):
            return f"{article} {kind.replace('_', '-')} address"
    return None if address.is_global else "not a public address"


class _Deadline:
    """One time budget for a whole fetch: DNS, connecting, TLS, headers and body, across every redirect.

    A socket timeout bounds each read, not the call (a server that sends a byte per read never trips it), so when
    the time is up a timer shuts down every socket the fetch opened, which ends any read under way.
    """

    def __init__(self, seconds: float, url: str):
        self.seconds, self.url, self.passed = seconds, url, False
        self._end = time.monotonic() + seconds
        self._sockets, self._lock = [], threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def left(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise self.exceeded()
        return left

    def exceeded(self) -> FetchError:
        return FetchError(f"Could not fetch {self.url}: it took longer than {self.seconds:g} s; set {ENV_TIMEOUT} "
                          "(seconds) or pass timeout= to wait longer, or try another server.")

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.passed:
                raise self.exceeded()
            self._sockets.append(sock.dup())   # the same connection, still ours once TLS takes over `sock`

    def _cut(self):
        with self._lock:
            self.passed = True
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def fetch(url: str, *, max_bytes: int, timeout: float | None = None,
          policy: AddressPolicy = AddressPolicy()) -> bytes:
    """The body of an http(s) URL, within one total deadline, reaching only what `policy` allows.

    Redirects (at most 5) are followed here so that each hop's scheme and addresses are checked; the connection
    goes to the very address that was checked, so a second DNS answer cannot swap it (DNS rebinding).
    """
    with _Deadline(timeout_s(timeout), url) as deadline:
        try:
            body = _follow(url, max_bytes, policy, deadline)
        except (OSError, http.client.HTTPException, UnicodeError) as e:
            if deadline.passed or isinstance(e, TimeoutError):
                raise deadline.exceeded() from None
            raise FetchError(f"Could not fetch {url}: {e.__class__.__name__}: {e}. "
                             "Check the URL and your network, or use a local copy.") from None
        if deadline.passed:   # a cut-off connection can look like the end of a body of unknown length
            raise deadline.exceeded()
        return body


def _follow(start: str, max_bytes: int, policy: AddressPolicy, deadline: _Deadline) -> bytes:
    url = start
    for _ in range(MAX_REDIRECTS + 1):
        where = url if url == start else f"{url} (a redirect from {start})"
        connection = _connect(url, where, policy, deadline)
        try:
            response = connection.getresponse()
            location = response.getheader("Location")
            if response.status in REDIRECT_STATUSES and location:
                url = urljoin(url, location.strip())
                continue
            if not 200 <= response.status < 300:
                raise FetchError(f"Could not fetch {where}: HTTP {response.status} {response.reason}. "
                                 "Check the URL, or use a local copy.")
            return _body(response, where, max_bytes)
        finally:
            connection.close()
    raise FetchError(f"Could not fetch {start}: more than {MAX_REDIRECTS} redirects (a redirect loop?).")


def _connect(url: str, where: str, policy: AddressPolicy, deadline: _Deadline) -> http.client.HTTPConnection:
    """A connection with the GET for `url` sent, to an address that `policy` allows."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"Refused to fetch {where}: only http and https URLs are fetched.")
    try:
        host, port = parts.hostname.encode("idna").decode("ascii"), parts.port
    except (AttributeError, UnicodeError, ValueError):
        raise FetchError(f"Could not fetch {where}: it has no valid host name and port.") from None
    default_port = 443 if parts.scheme == "https" else 80
    addresses = _allowed_addresses(host, port or default_port, where, policy, deadline)
    connection = http.client.HTTPConnection(host, port or default_port)
    connection.sock = _open_socket(addresses, port or default_port, deadline)   # http.client must not resolve again
    try:
        deadline.watch(connection.sock)
        if parts.scheme == "https":
            connection.sock = _tls().wrap_socket(connection.sock, server_hostname=host.rstrip("."))
        host_header = f"[{host}]" if ":" in host else host
        target = quote(parts.path or "/", safe=URL_SAFE) + (f"?{quote(parts.query, safe=URL_SAFE + '?')}"
                                                            if parts.query else "")
        connection.request("GET", target, headers={
            "Host": host_header if port in (None, default_port) else f"{host_header}:{port}",
            "User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.8", "Accept-Encoding": "identity",
            "Connection": "close"})
    except BaseException:
        connection.close()
        raise
    return connection


def _allowed_addresses(host: str, port: int, where: str, policy: AddressPolicy, deadline: _Deadline) -> list:
    """Every address `host` resolves to, or a refusal naming the first that `policy` does not allow."""
    addresses = _resolve(host, port, deadline)
    for address in addresses:
        reason = policy.refusal(host, address)
        if reason:
            named = host if addresses == _literal(host) else f"{host} resolves to {address}, which"
            raise FetchError(f"Refused to fetch {where}: {named} is {reason}, and this caller's address policy "
                             "reaches public addresses only (against server-side request forgery). If the host is "
                             f"trusted, allow it: AddressPolicy(allow=[...]) or {ENV_ALLOW_HOSTS}.")
    return addresses


def _resolve(host: str, port: int, deadline: _Deadline) -> list:
    """Every address `host` resolves to; getaddrinfo has no timeout, so it runs in a thread the deadline can leave."""
    literal = _literal(host)
    if literal:
        return literal
    answer = []

    def look_up():
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as e:
            answer.append(e)

    thread = threading.Thread(target=look_up, name=f"vlsteps-resolve-{host}", daemon=True)
    thread.start()
    thread.join(deadline.left())
    if not answer:
        raise deadline.exceeded()
    if isinstance(answer[0], Exception):
        raise answer[0]
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in answer[0]))


def _literal(host: str) -> list:
    """[the address] when `host` is an IP address, else []."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return []


def _open_socket(addresses: list, port: int, deadline: _Deadline) -> socket.socket:
    """A socket connected to the first of `addresses` that answers, in the resolver's order."""
    *others, last = addresses
    for address in others:
        try:
            return socket.create_connection((str(address), port), timeout=deadline.left())
        except OSError:
            continue
    return socket.create_connection((str(last), port), timeout=deadline.left())


def _body(response: http.client.HTTPResponse, where: str, max_bytes: int) -> bytes:
    """The body, refused as soon as it is known or seen to pass `max_bytes`. http.client's `length` is None when
    Content-Length is missing or unparsable."""
    limit = f"over the {max_bytes / 1e6:.0f} MB limit; download and shrink it first"
    if response.length is not None and response.length > max_bytes:
        raise FetchError(f"{where} is {response.length / 1e6:.1f} MB, {limit}")
    chunks, size = [], 0
    while chunk := response.read(CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"{where} is {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


@functools.cache
def _tls() -> ssl.SSLContext:
    """Certificate checks against certifi's roots, as requests does (some systems ship none)."""
    import certifi
    return ssl.create_default_context(cafile=certifi.where())
