"""The address policy and the guarded fetch. Nothing here may reach past loopback: a guard fails any test that
tries, and names are resolved by a fake resolver (real DNS only parses numeric hosts)."""
import io
import ipaddress
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import given, strategies as st
from PIL import Image

from vlsteps import net
from vlsteps.net import AddressPolicy, FetchError, fetch

PUBLIC_ONLY = AddressPolicy(allow_private=False)


def png_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), 128).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail, instead of sending anything, when code under test connects past loopback."""
    connect = socket.socket.connect

    def guarded(sock, address):
        if isinstance(address, tuple) and not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
            raise AssertionError(f"the test tried to connect to {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def dns(monkeypatch):
    """A resolver that knows only the names put in it; numeric hosts ("2130706433") are parsed as usual."""
    table, asked = {}, []
    getaddrinfo = socket.getaddrinfo

    def fake(host, port, family=0, type=0, proto=0, flags=0):
        asked.append(host)
        if host in table:
            answers = table[host]() if callable(table[host]) else table[host]
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                    for ip in answers]
        return getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return SimpleNamespace(table=table, asked=asked)


def serve(handler_class, wrap=None):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    if wrap:
        httpd.socket = wrap(httpd.socket)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def web():
    """/photo.png, and /go?to=URL which redirects there; records the Host header and path of every request."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.headers["Host"], self.path))
            parts = urlsplit(self.path)
            if parts.path == "/go":
                self.send_response(302)
                self.send_header("Location", parse_qs(parts.query)["to"][0])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif parts.path == "/photo.png":
                body = png_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = serve(Handler)
    port = httpd.server_address[1]
    yield SimpleNamespace(port=port, url=f"http://127.0.0.1:{port}", seen=seen,
                          go=lambda target: f"/go?to={quote(target, safe='')}")
    httpd.shutdown()


@pytest.fixture
def server(web):
    web.seen.clear()
    return web


DEFAULT_LIMIT = dict(max_bytes=1_000_000, timeout=10)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fd00:ec2::254",
                                     "::ffff:127.0.0.1", "8.8.8.8"])
def test_the_default_policy_reaches_every_address(address):
    assert AddressPolicy().refusal("host", address) is None


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("fd12:3456::1", "private"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"), ("100.100.100.200", "cloud metadata"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
    ("100.64.0.1", "not a public"),
    # the same hosts in IPv4-mapped and NAT64 IPv6 form
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"), ("::ffff:a9fe:a9fe", "cloud metadata"),
    ("64:ff9b::7f00:1", "loopback"),
])
def test_public_only_refuses_every_non_public_kind_and_says_which(address, reason):
    assert reason in PUBLIC_ONLY.refusal("host", address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_only_reaches_public_addresses(address):
    assert PUBLIC_ONLY.refusal("host", address) is None


@given(st.ip_addresses(v=4))
def test_an_ipv4_mapped_address_is_judged_as_the_ipv4_address_it_reaches(address):
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert PUBLIC_ONLY.refusal("h", mapped) == PUBLIC_ONLY.refusal("h", address)


@given(st.ip_addresses())
def test_public_only_reaches_only_globally_routable_unicast_addresses(address):
    reason = PUBLIC_ONLY.refusal("h", address)
    reached = net._unwrapped(address)
    assert reason is None or reason.startswith(("a ", "an ", "the ", "not "))
    assert (reason is None) == (reached.is_global and not reached.is_multicast and not reached.is_reserved
                                and reached not in net.METADATA_ADDRESSES)


def test_the_allow_list_names_networks_and_exact_hosts():
    policy = AddressPolicy(allow_private=False, allow=["10.1.0.0/16", "Images.Internal", "::1"])
    assert policy.refusal("x", "10.1.2.3") is None
    assert policy.refusal("x", "::ffff:10.1.2.3") is None
    assert policy.refusal("x", "::1") is None
    assert "private" in policy.refusal("x", "10.2.0.1")
    assert policy.refusal("images.internal.", "10.9.9.9") is None      # any address of a named host
    assert "private" in policy.refusal("images.internal.evil.example", "10.9.9.9")


def test_the_service_policy_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("VLSTEPS_ALLOW_HOSTS", "images.internal, 10.1.0.0/16  ::1")
    policy = AddressPolicy.from_env()
    assert policy == AddressPolicy(allow_private=False, allow=["images.internal", "10.1.0.0/16", "::1"])
    monkeypatch.delenv("VLSTEPS_ALLOW_HOSTS")
    assert AddressPolicy.from_env() == PUBLIC_ONLY
    monkeypatch.setenv("VLSTEPS_ALLOW_HOSTS", "http://images.internal/")
    with pytest.raises(ValueError, match="VLSTEPS_ALLOW_HOSTS.*neither a host name"):
        AddressPolicy.from_env()
    with pytest.raises(TypeError, match="list"):
        AddressPolicy(allow="images.internal")


def test_a_local_server_is_refused_by_public_only_and_reached_otherwise(server):
    url = f"{server.url}/photo.png"
    with pytest.raises(FetchError, match=r"Refused to fetch .*127\.0\.0\.1 is a loopback address.*ALLOW_HOSTS"):
        fetch(url, policy=PUBLIC_ONLY, **DEFAULT_LIMIT)
    assert server.seen == []                                    # refused before any request
    for policy in (AddressPolicy(), AddressPolicy(allow_private=False, allow=["127.0.0.0/8"])):
        assert fetch(url, policy=policy, **DEFAULT_LIMIT) == png_bytes()


def test_a_redirect_to_a_refused_address_is_refused_on_the_redirect(server, dns):
    dns.table["public.example"] = ["127.0.0.1"]        # stands in for a public host that is allowed
    policy = AddressPolicy(allow_private=False, allow=["public.example"])
    start = f"http://public.example:{server.port}"
    assert fetch(f"{start}/photo.png", policy=policy, **DEFAULT_LIMIT) == png_bytes()
    server.seen.clear()
    with pytest.raises(FetchError, match=r"Refused to fetch http://127\.0\.0\.1:\d+/photo\.png \(a redirect from "
                                         r"http://public\.example.*loopback"):
        fetch(start + server.go(f"{server.url}/photo.png"), policy=policy, **DEFAULT_LIMIT)
    assert [path for _, path in server.seen] == [server.go(f"{server.url}/photo.png")]


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/",
                                    "http://[fd00:ec2::254]/latest/"])
def test_the_cloud_metadata_service_is_refused_also_behind_a_redirect(server, dns, target):
    dns.table["public.example"] = ["127.0.0.1"]
    policy = AddressPolicy(allow_private=False, allow=["public.example"])
    with pytest.raises(FetchError, match="cloud metadata"):
        fetch(target, policy=policy, **DEFAULT_LIMIT)
    with pytest.raises(FetchError, match="a redirect from.*cloud metadata"):
        fetch(f"http://public.example:{server.port}" + server.go(target), policy=policy, **DEFAULT_LIMIT)


def test_a_redirect_to_another_scheme_is_refused_by_every_policy(server):
    with pytest.raises(FetchError, match="only http and https"):
        fetch(server.url + server.go("file:///etc/passwd"), **DEFAULT_LIMIT)


def test_every_address_a_name_resolves_to_is_checked(dns):
    dns.table["mixed.example"] = ["93.184.215.14", "10.0.0.7"]
    with pytest.raises(FetchError, match=r"mixed\.example resolves to 10\.0\.0\.7, which is a private address"):
        fetch("http://mixed.example/cat.jpg", policy=PUBLIC_ONLY, **DEFAULT_LIMIT)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1"])
def test_numeric_spellings_of_loopback_are_refused(server, dns, host):
    with pytest.raises(FetchError, match="127.0.0.1, which is a loopback address"):
        fetch(f"http://{host}:{server.port}/photo.png", policy=PUBLIC_ONLY, **DEFAULT_LIMIT)
    assert server.seen == []


def test_the_connection_goes_to_the_checked_address_not_a_second_answer(server, dns):
    answers = iter([["127.0.0.1"]])                      # a rebinding resolver: the checked answer first ...
    dns.table["rebind.example"] = lambda: next(answers, ["127.0.0.2"])   # ... then another one
    policy = AddressPolicy(allow_private=False, allow=["127.0.0.1"])
    assert fetch(f"http://rebind.example:{server.port}/photo.png", policy=policy, **DEFAULT_LIMIT) == png_bytes()
    assert dns.asked.count("rebind.example") == 1
    assert server.seen == [(f"rebind.example:{server.port}", "/photo.png")]   # the name still goes to the server


def test_https_checks_the_certificate_against_the_name_while_connecting_to_the_address(tmp_path, monkeypatch, dns):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=images.test",
                    "-addext", "subjectAltName=DNS:images.test", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = png_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = serve(Handler, wrap=lambda sock: server_tls.wrap_socket(sock, server_side=True))
    try:
        monkeypatch.setattr(net, "_tls", lambda: ssl.create_default_context(cafile=str(cert)))
        dns.table["images.test"] = ["127.0.0.1"]
        port = httpd.server_address[1]
        assert fetch(f"https://images.test:{port}/photo.png", **DEFAULT_LIMIT) == png_bytes()
        with pytest.raises(FetchError, match="Could not fetch.*SSLCertVerificationError"):
            fetch(f"https://127.0.0.1:{port}/photo.png", **DEFAULT_LIMIT)      # the certificate is not for this name
    finally:
        httpd.shutdown()
