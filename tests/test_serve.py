"""vlsteps serve: every route's contract (built from PhotoPrism's and Photofield AI's own examples), the embedding
payload, the SSRF policy, auth, bad input, and batching across concurrent requests. All on stand-ins."""
import asyncio
import base64
import contextlib
import http.server
import io
import json
import re
import select
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from conftest import SERVE_SETTINGS as SETTINGS
from conftest import data_url, jpeg, serving
from PIL import Image, PngImagePlugin
from fastapi.testclient import TestClient

from vlsteps import sample_photo, world
from vlsteps.serve import photofield
from vlsteps.serve.app import BodyGuard, create_app, service_status
from vlsteps.serve.batching import SCORE_TOLERANCE
from vlsteps.serve.settings import Settings
from vlsteps.standins import MARKER
from vlsteps.standins.wording import TRAINED_HERE

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def strict():
    """A service with small limits and a 1 s body deadline, for tests that cross them; yields its base URL."""
    with serving(create_app(Settings(**SETTINGS, max_image_bytes=100_000, max_images=2, body_timeout_s=1))) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server[1], timeout=120) as c:
        yield c


def png_text_bomb() -> bytes:
    """A PNG whose compressed text chunk inflates past Pillow's cap: Pillow raises a bare ValueError for it."""
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), zip=True)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_server():
    """A local HTTP server on 127.0.0.1 serving a JPEG at /photo.jpg (the kind of address SSRF aims at) and a PNG
    text bomb at /bomb.png; yields the photo's URL."""
    bodies = {"/photo.jpg": jpeg("coffee"), "/bomb.png": png_text_bomb()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/photo.jpg"
    httpd.shutdown()


# --- PhotoPrism Vision API -----------------------------------------------------------------------------
def photoprism_request(**fields):
    """A request as PhotoPrism's vision client builds it (api_request.go: NewApiRequestImages, data scheme)."""
    return {"id": "3b5d2c1e-9f0a-4c3e-8b2a-1d2e3f4a5b6c", "model": "", "version": "", "system": "", "prompt": "",
            "suffix": "", "format": "", "url": "", "options": None, "context": None, "stream": False,
            "images": [data_url(jpeg())], **fields}


@pytest.mark.parametrize("path,name", [("/api/v1/vision/caption", "kosmos-2"),
                                       ("/api/v1/vision/caption/vit-gpt2", "vit-gpt2"),
                                       ("/api/v1/vision/caption/blip-caption", "blip-caption")])
def test_photoprism_caption_contract(client, path, name):
    r = client.post(path, json=photoprism_request())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "3b5d2c1e-9f0a-4c3e-8b2a-1d2e3f4a5b6c" and body["code"] == 200
    assert body["model"]["type"] == "caption" and body["model"]["name"] == name and body["model"]["version"]
    assert isinstance(body["model"]["resolution"], int)
    caption = body["result"]["caption"]
    assert set(caption) == {"text", "source", "confidence"}
    assert isinstance(caption["text"], str) and caption["text"] and 0 <= caption["confidence"] <= 1


@pytest.fixture(scope="module")
def sentences():
    """A service that lets a caption run to a whole two-shape sentence (10 words); yields its base URL."""
    with serving(create_app(Settings(**{**SETTINGS, "max_new_tokens": 12}))) as url:
        yield url


@pytest.mark.parametrize("name", ["blip-caption", "vit-gpt2"])
def test_photoprism_captions_world_scenes_in_the_world_grammar(sentences, name):
    """Offline, the stand-in captioners learned the procedural world: held-out scenes sent as PhotoPrism sends a
    thumbnail (a JPEG data URL) come back as sentences of the world's grammar, some word for word right (one-shape
    scenes mostly; the relation of two is the hardest part), not noise at a high confidence."""
    scenes = world.scenes(6, 0, "test")
    said = []
    for scene in scenes:
        buf = io.BytesIO()
        world.draw(scene, 384).save(buf, "JPEG", quality=95)
        r = httpx.post(f"{sentences}/api/v1/vision/caption/{name}",
                       json=photoprism_request(images=[data_url(buf.getvalue())]), timeout=120)
        assert r.status_code == 200, r.text
        said.append(r.json()["result"]["caption"]["text"])
    assert all(world.parse(text) for text in said), said
    assert sum(text in scene.captions for text, scene in zip(said, scenes)) >= 2, said


def test_photoprism_instruction_models_follow_the_prompt(client):
    for name in ("blip2", "qwen-vl"):
        a = client.post(f"/api/v1/vision/caption/{name}", json=photoprism_request(prompt="Question: what? Answer:"))
        b = client.post(f"/api/v1/vision/caption/{name}", json=photoprism_request(prompt="Describe the colours."))
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        assert a.json()["model"]["name"] == name
        assert a.json()["result"]["caption"] != b.json()["result"]["caption"], f"{name} ignored the prompt"


def test_photoprism_labels_contract_and_random_id(client):
    request = photoprism_request(id="")
    request["images"] = []
    request["url"] = data_url(jpeg("rocket"))
    r = client.post("/api/v1/vision/labels", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert UUID.fullmatch(body["id"]), "no id sent: a random UUID comes back"
    assert body["model"] == {"type": "labels", "name": "clip", "version": body["model"]["version"], "resolution": 224}
    labels = body["result"]["labels"]
    assert len(labels) == 5
    for label in labels:
        assert {"name", "source", "priority", "confidence", "topicality", "categories"} <= set(label)
        assert 0 <= label["confidence"] <= 1 and 0 <= label["topicality"] <= 1
    confidences = [label["confidence"] for label in labels]
    assert confidences == sorted(confidences, reverse=True)
    assert len({label["name"] for label in labels}) == 5


def test_labels_from_a_users_file(tmp_path, monkeypatch):
    words = ["cat", "rocket", "coffee cup"]
    (tmp_path / "labels.txt").write_text("\n".join(words) + "\n\ncat\n")
    monkeypatch.setenv("VLSTEPS_SERVE_LABELS", str(tmp_path / "labels.txt"))
    with TestClient(create_app(Settings.from_env())) as c:
        labels = c.post("/api/v1/vision/labels", json=photoprism_request(options={"num_predict": 10})).json()
    got = labels["result"]["labels"]
    assert sorted(label["name"] for label in got) == sorted(words)
    assert sum(label["confidence"] for label in got) == pytest.approx(1, abs=2e-3)   # the whole vocabulary


def test_labels_of_world_scenes_name_the_drawn_shape(tmp_path, monkeypatch):
    """The CLIP stand-in learned the procedural world (vlsteps/cards/clip.py): among the world's labels, the label
    of a drawn one-shape scene comes first, as a real CLIP's label of a photo would."""
    from vlsteps import world
    (tmp_path / "labels.txt").write_text("\n".join(world.LABELS) + "\n")
    monkeypatch.setenv("VLSTEPS_SERVE_LABELS", str(tmp_path / "labels.txt"))
    scenes = world.scenes(4, 0, "test", count=1, held_out=False)
    images = []
    for scene in scenes:
        buf = io.BytesIO()
        world.draw(scene, 224).save(buf, "JPEG", quality=95)
        images.append(data_url(buf.getvalue()))
    with TestClient(create_app(Settings.from_env())) as c:
        got = [c.post("/api/v1/vision/labels", json=photoprism_request(images=[image])).json() for image in images]
    assert [body["result"]["labels"][0]["name"] for body in got] == [s.things[0].label for s in scenes]


@pytest.mark.parametrize("request_fields,status", [
    ({"images": []}, 400),                                            # no image
    ({"images": [data_url(b"not an image")]}, 422),                   # not decodable
    ({"images": ["data:image/jpeg;base64,@@@"]}, 400),               # not base64
    ({"images": ["file:///etc/passwd"]}, 400),                        # scheme
    ({"model": "gpt-9"}, 404),                                        # unknown model
    ({"images": "data:"}, 422),                                       # wrong type
])
def test_photoprism_errors_have_its_shape(client, request_fields, status):
    r = client.post("/api/v1/vision/caption", json=photoprism_request(**request_fields))
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in r.text


def test_an_image_no_decoder_reads_is_a_422_on_every_route(client, image_server, monkeypatch):
    """A PNG text bomb (Pillow: a bare ValueError) as a data URL, an upload and a fetched URL: 422, never a 500."""
    bomb = png_text_bomb()
    url = "data:image/png;base64," + base64.b64encode(bomb).decode()
    answers = [client.post("/api/v1/vision/caption", json=photoprism_request(images=[url])),
               client.post("/api/v1/vision/labels", json=photoprism_request(images=[url])),
               client.post("/api/v1/vision/describe", json={"url": url}),
               client.get("/api/v1/vision/describe/vit-gpt2-image-captioning", params={"url": url}),
               client.post("/search", json={"image": url}),
               client.post("/image-embeddings", files=[("image0", ("bomb.png", bomb, "image/png"))])]
    monkeypatch.setenv("VLSTEPS_ALLOW_HOSTS", "127.0.0.1")
    with TestClient(create_app(Settings.from_env())) as allowed:
        answers.append(allowed.post("/api/v1/vision/labels",
                                    json=photoprism_request(images=[image_server.replace("photo.jpg", "bomb.png")])))
    for r in answers:
        assert r.status_code == 422, (r.request.url, r.text)
        assert "image" in r.json()["error"] and "JPEG" in r.json()["error"], r.text


def test_a_strip_no_model_reads_is_a_422_and_the_longest_one_is_served(client):
    """Qwen2-VL's processor refuses a side over 200 times the other (a ValueError: 500); CLIP scaled 1x20000 to GBs."""
    def strip(size):
        buf = io.BytesIO()
        Image.new("RGB", size, "red").save(buf, "PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    for path in ("/api/v1/vision/caption/qwen-vl", "/api/v1/vision/labels"):
        refused = client.post(path, json=photoprism_request(images=[strip((1, 201))]))
        assert refused.status_code == 422 and "1x201 pixels" in refused.json()["error"], refused.text
        assert client.post(path, json=photoprism_request(images=[strip((200, 1))])).status_code == 200


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_labels_refuse_a_count_no_integer_holds(client, number):
    """PhotoPrism and Ollama read num_predict as an int and refuse these; here they were an OverflowError (500)."""
    request = json.dumps(photoprism_request()).replace('"options": null', f'"options": {{"num_predict": {number}}}')
    r = client.post("/api/v1/vision/labels", content=request, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["id"] == photoprism_request()["id"], r.text
    assert "whole number from 1 to 20" in r.json()["error"]
    huge = client.post("/api/v1/vision/labels", json=photoprism_request(options={"num_predict": 1e300}))
    assert len(huge.json()["result"]["labels"]) == 20        # a finite count past the cap is capped


def test_a_lone_surrogate_is_the_same_422_on_texts_and_search(client):
    """json.loads turns "\\ud800" into a str no tokenizer reads (/text-embeddings: TypeError, 500)."""
    errors = []
    for path, body in (("/text-embeddings", b'{"texts": ["a cat", "\\ud800 cat"]}'),
                       ("/search", b'{"text": "\\ud800 cat"}')):
        r = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        errors.append(r.json()["error"].partition(": ")[2])
    assert errors[0] == errors[1] and "lone surrogate" in errors[0]
    paired = client.post("/text-embeddings", content=b'{"texts": ["\\ud83d\\ude00 cat"]}',
                         headers={"Content-Type": "application/json"})
    assert paired.status_code == 200 and paired.json()["texts"][0]["text"] == "\U0001F600 cat"


def test_an_error_quoting_a_lone_surrogate_is_still_sent(client):
    """The fetch error quotes the URL; a lone surrogate in it made the JSON answer itself fail (a 500)."""
    r = client.post("/api/v1/vision/labels", content=b'{"images": ["http://\\ud800.example/x.jpg"]}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "http://\\ud800.example/x.jpg" in r.json()["error"], r.text


def test_oversized_bodies_and_uploads_are_refused_before_parsing(client, server):
    limit = server[0].state.settings.max_image_bytes
    huge = "data:image/jpeg;base64," + "A" * (limit // 3 * 4 + 400)
    assert client.post("/api/v1/vision/caption", json=photoprism_request(images=[huge])).status_code == 413
    host, port = server[1].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:   # announces 1 TB, sends nothing
        sock.sendall(b"POST /text-embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000000\r\n\r\n")
        head = sock.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413") and '"code":413' in head


def raw_exchange(base: str, head: bytes, chunks=()) -> bytes:
    """All the server sends on one connection until it closes it, for `head` and then `chunks` until the server
    answers (a client that reads an early answer, as curl does). The socket's timeout bounds every wait: a server
    that keeps the connection open fails the test."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        received = b""
        with contextlib.suppress(ConnectionResetError):        # closed with the body unread: a reset, not a FIN
            while data := sock.recv(65536):
                received += data
    return received


def refusal(answer: bytes, status: int) -> str:
    """The error of an answer that must be `status` in the service's shape and close the connection."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status) and b"connection: close" in head.lower(), answer[:300]
    error = json.loads(body)
    assert error["code"] == status
    return error["error"]


def post_head(path: str, content_type: str, framing: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n%s\r\n\r\n" % (path.encode(), content_type.encode(),
                                                                               framing)


def chunked(total: int, start: bytes = b"", piece: int = 64 * 1024):
    """`start`, then base64 letters to `total` bytes, as HTTP/1.1's chunked framing sends them."""
    yield b"%x\r\n%s\r\n" % (len(start), start) if start else b""
    for _ in range(total // piece):
        yield b"%x\r\n%s\r\n" % (piece, b"A" * piece)
    yield b"0\r\n\r\n"


def test_a_30_mb_chunked_body_gets_413_with_the_limit(server):
    """No Content-Length: counted while it streams (it got 400 "There was an error parsing the body")."""
    head = post_head("/text-embeddings", "application/json", b"Transfer-Encoding: chunked")
    assert "28 MB limit" in refusal(raw_exchange(server[1], head, chunked(30_000_000)), 413)


JSON_ROUTES = ["/text-embeddings", "/search", "/api/v1/vision/caption", "/api/v1/vision/labels",
               "/api/v1/vision/describe"]
UPLOAD_ROUTES = ["/image-embeddings", "/caption"]
MULTIPART = "multipart/form-data; boundary=b"
PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
BODY_ROUTES = [(path, "application/json") for path in JSON_ROUTES] + [(path, MULTIPART) for path in UPLOAD_ROUTES]


@pytest.mark.parametrize("path,content_type", BODY_ROUTES)
def test_every_route_refuses_a_chunked_body_past_its_limit(strict, path, content_type):
    head = post_head(path, content_type, b"Transfer-Encoding: chunked")
    start, limit = (PART, "1.25 MB") if content_type == MULTIPART else (b'{"texts": ["', "0.199 MB")
    assert f"over the {limit} limit" in refusal(raw_exchange(strict, head, chunked(2_000_000, start)), 413)


@pytest.mark.parametrize("chunks", [False, True])
@pytest.mark.parametrize("path,content_type", BODY_ROUTES[:1] + BODY_ROUTES[-2:])
def test_a_stalled_body_gets_408_and_its_connection_closes(strict, path, content_type, chunks):
    """Headers and part of a body, then nothing: answered at the 1 s deadline and closed (it stayed open)."""
    sent = (PART if content_type == MULTIPART else b'{"texts": ["') + b"AAAA"
    framing = b"Transfer-Encoding: chunked" if chunks else b"Content-Length: 1000"
    answer = raw_exchange(strict, post_head(path, content_type, framing) + (next(chunked(0, sent)) if chunks else sent))
    assert "did not arrive in full within 1 s" in refusal(answer, 408)


def test_the_body_deadline_ends_with_the_body(strict):
    """A request whose body arrived is served however long it takes; the strict service still serves bodies."""
    async def slow_handler(scope, receive, send):
        assert (await receive())["body"] == b"{}"
        assert (await receive())["type"] == "http.disconnect"       # waiting for the client past the deadline
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    events = iter([{"type": "http.request", "body": b"{}", "more_body": False}, {"type": "http.disconnect"}])

    async def receive():
        await asyncio.sleep(0.3)
        return next(events)

    sent = []

    async def send(event):
        sent.append(event)

    guard = BodyGuard(slow_handler, Settings(body_timeout_s=0.5))
    asyncio.run(guard({"type": "http", "headers": [(b"content-length", b"2")]}, receive, send))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"served"
    assert httpx.post(f"{strict}/text-embeddings", json={"texts": ["a cat"]}, timeout=60).status_code == 200


@pytest.mark.parametrize("raw", ["nan", "inf", "0"])
@pytest.mark.parametrize("name", ["BODY_TIMEOUT_S", "FETCH_TIMEOUT_S"])
def test_a_deadline_that_is_no_deadline_is_refused_at_start(monkeypatch, name, raw):
    """NaN passed the check (no comparison holds for it) and made every body late at once; inf was no deadline."""
    monkeypatch.setenv(f"VLSTEPS_SERVE_{name}", raw)
    with pytest.raises(ValueError, match=f"VLSTEPS_SERVE_{name}=.* must be a finite number, at least 1"):
        Settings.from_env()


# --- legacy describe ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path,name,version", [
    ("/api/v1/vision/describe", "kosmos-2", "patch14-224"),
    ("/api/v1/vision/describe/kosmos-2/patch14-224", "kosmos-2", "patch14-224"),
    ("/api/v1/vision/describe/vit-gpt2-image-captioning", "vit-gpt2-image-captioning", "latest"),
    ("/api/v1/vision/describe/blip-image-captioning-large", "blip-image-captioning-large", "latest"),
])
def test_legacy_describe_get_and_post(client, path, name, version):
    url = data_url(jpeg("astronaut"))
    got = client.get(path, params={"url": url, "id": "abc"})
    posted = client.post(path, json={"url": url, "id": "abc"})
    for r in (got, posted):
        assert r.status_code == 200, r.text
        assert r.json()["id"] == "abc"
        assert r.json()["model"] == {"name": name, "version": version}
        assert isinstance(r.json()["result"]["caption"], str)     # a string, never a list
    assert got.json() == posted.json()
    assert UUID.fullmatch(client.post(path, json={"url": url}).json()["id"])


def test_legacy_describe_fetch_error_is_the_clients(client):
    r = client.get("/api/v1/vision/describe", params={"url": "https://nonexistent.invalid/x.jpg"})
    assert 400 <= r.status_code < 500 and "Could not fetch" in r.json()["error"]


# --- Photofield --------------------------------------------------------------------------------------
def test_photofield_text_embeddings_payload_is_the_embedders_vector(client, server):
    texts = ["hawk", "lion", "tiger", "baby cub"]                        # photofield-ai's examples.http
    r = client.post("/text-embeddings", json={"texts": texts})
    assert r.status_code == 200, r.text
    items = r.json()["texts"]
    assert [item["text"] for item in items] == texts
    expected = server[0].state.pool.embedder().texts(texts)
    for item, want in zip(items, expected):
        assert set(item) == {"text", "embedding_f16_b64", "embedding_inv_norm_f16_uint16"}
        vector, inverse_norm = photofield.decode(item["embedding_f16_b64"], item["embedding_inv_norm_f16_uint16"])
        assert vector.shape == want.shape
        assert vector @ want / np.linalg.norm(vector) / np.linalg.norm(want) >= 0.999
        assert inverse_norm == pytest.approx(1 / np.linalg.norm(vector), rel=1e-3)


def test_photofield_image_embeddings_keeps_fields_and_order(client, server):
    images = {f"image{i}": jpeg(name) for i, name in enumerate(["chelsea", "coffee", "rocket"])}
    files = [(field, ("test.jpg", data, "image/jpeg")) for field, data in images.items()]
    r = client.post("/image-embeddings", files=files)
    assert r.status_code == 200, r.text
    items = r.json()["images"]
    assert [(item["field"], item["filename"]) for item in items] == [(f, "test.jpg") for f in images]
    expected = server[0].state.pool.embedder().images([_decoded(d) for d in images.values()])
    for item, want in zip(items, expected):
        vector, inverse_norm = photofield.decode(item["embedding_f16_b64"], item["embedding_inv_norm_f16_uint16"])
        assert vector @ want / np.linalg.norm(vector) >= 0.999
        assert inverse_norm == pytest.approx(1 / np.linalg.norm(vector), rel=1e-3)


def _decoded(data: bytes):
    from vlsteps.images import load_image
    return load_image(data)


def test_encoding_matches_photofield_byte_for_byte():
    """photofield-ai's encode_embedding: base64 of the float16 array, and 1/‖v‖ in float16 read as a uint16."""
    v = np.random.default_rng(0).normal(size=512).astype(np.float32)
    b64, bits = photofield.encode(v)
    assert b64 == base64.b64encode(v.astype(np.float16).tobytes()).decode()
    assert bits == int.from_bytes(np.divide(1, np.linalg.norm(v), dtype=np.float16).tobytes(), "little")
    vector, inverse_norm = photofield.decode(b64, bits)
    np.testing.assert_array_equal(vector, v.astype(np.float16).astype(np.float32))
    assert inverse_norm == pytest.approx(1 / np.linalg.norm(v), rel=1e-3)


def test_photofield_feature_discovery_and_errors(client):
    assert client.head("/text-embeddings").status_code == 200
    assert client.head("/image-embeddings").status_code == 200
    assert client.post("/text-embeddings", json={"texts": []}).status_code == 422
    assert client.post("/text-embeddings", json={"texts": ["x" * 5000]}).status_code == 413
    assert client.post("/text-embeddings", json={"texts": ["a"] * 1000}).status_code == 413
    r = client.post("/image-embeddings", data={"image0": "not a file"})
    assert r.status_code in (400, 422) and r.json()["error"]
    r = client.post("/image-embeddings", files=[("image0", ("x.jpg", b"\xff\xd8garbage", "image/jpeg"))])
    assert r.status_code == 422 and "not a readable image" in r.json()["error"]


def test_search_over_the_chroma_index(client, server):
    from vlsteps import index
    pool = server[0].state.pool
    collection = pool.collection()
    photos = {name: sample_photo(name).resize((64, 48)) for name in ("chelsea", "coffee", "rocket")}
    index.index_images(collection, pool.embedder(), list(photos.values()), [{"category": n} for n in photos])
    by_text = client.post("/search", json={"text": "a photo of a cat", "k": 2})
    assert by_text.status_code == 200, by_text.text
    assert by_text.json()["collection"] == collection.name and len(by_text.json()["hits"]) == 2
    buf = io.BytesIO()
    photos["coffee"].save(buf, "PNG")
    by_image = client.post("/search", json={"image": "data:image/png;base64," + base64.b64encode(buf.getvalue())
                                            .decode(), "k": 3}).json()["hits"]
    assert by_image[0]["metadata"]["category"] == "coffee" and by_image[0]["similarity"] == pytest.approx(1, abs=1e-3)
    assert client.post("/search", json={}).status_code == 400
    assert client.post("/search", json={"text": "a", "image": "b"}).status_code == 400


# --- SSRF --------------------------------------------------------------------------------------------
def test_ssrf_refused_by_default_and_allowed_by_env(client, image_server, monkeypatch):
    r = client.post("/api/v1/vision/labels", json=photoprism_request(images=[], url=image_server))
    assert r.status_code == 403, r.text
    assert "loopback" in r.json()["error"] and "VLSTEPS_ALLOW_HOSTS" in r.json()["error"]
    r = client.get("/api/v1/vision/describe", params={"url": image_server})
    assert r.status_code == 403
    monkeypatch.setenv("VLSTEPS_ALLOW_HOSTS", "127.0.0.1")
    with TestClient(create_app(Settings.from_env())) as allowed:
        r = allowed.post("/api/v1/vision/labels", json=photoprism_request(images=[], url=image_server))
    assert r.status_code == 200, r.text
    assert len(r.json()["result"]["labels"]) == 5


# --- auth --------------------------------------------------------------------------------------------
def test_bearer_token(monkeypatch):
    with TestClient(create_app(Settings(token="s3cret"))) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/openapi.json").status_code == 200
        denied = c.post("/text-embeddings", json={"texts": ["a"]})
        assert denied.status_code == 401 and denied.json()["code"] == 401
        wrong = c.post("/text-embeddings", json={"texts": ["a"]}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = c.post("/text-embeddings", json={"texts": ["a"]}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_status_says_stand_ins_loudly(client):
    status = client.get("/api/v1/status").json()
    assert status["standins_in_use"] is True and "STAND-INS" in status["warning"]
    assert status["models"]["clip"]["standin"] is True and status["limits"]["max_batch"] == SETTINGS["max_batch"]


def test_status_says_which_stand_ins_learned_the_shapes_world_and_which_are_random(tmp_path):
    def marked(name, learned):
        (tmp_path / name).mkdir()
        (tmp_path / name / MARKER).write_text(json.dumps({"key": "clip", "learned": learned}))
        return str(tmp_path / name)

    for clip_learned in (True, False):
        app = create_app(Settings(**SETTINGS, clip_dir=marked(f"clip-{clip_learned}", clip_learned)))
        app.state.pool.folder("clip")                       # the pool reads the folder's marker
        keys = [k for k in service_status(app)["models"] if k != "clip"]
        for key in keys:                                    # the others as the pool records them, without building
            app.state.pool.sources[key] = {"folder": "", "standin": True, "learned": key == "kosmos-2"}
        status = service_status(app)
        learned = ["clip", "kosmos-2"] if clip_learned else ["kosmos-2"]
        assert [k for k, m in status["models"].items() if m["learned"]] == learned
        random = ", ".join(sorted({"clip", *keys} - set(learned)))
        copies = "are tiny copies" if clip_learned else "is a tiny copy"
        assert status["warning"] == (f"STAND-INS: {', '.join(learned)} {copies} {TRAINED_HERE}; {random} are tiny "
                                     "random-weight copies, whose outputs are gibberish by design.")


# --- batching ----------------------------------------------------------------------------------------
def same_answer(alone, together, path="") -> None:
    """The batching promise (vlsteps/serve/batching.py): the same text, and numbers within SCORE_TOLERANCE."""
    assert type(together) is type(alone), path
    if isinstance(alone, dict):
        assert together.keys() == alone.keys(), path
        for k in alone:
            same_answer(alone[k], together[k], f"{path}.{k}")
    elif isinstance(alone, list):
        assert len(together) == len(alone), path
        for i, (a, b) in enumerate(zip(alone, together)):
            same_answer(a, b, f"{path}[{i}]")
    elif isinstance(alone, float):
        assert together == pytest.approx(alone, abs=SCORE_TOLERANCE), path
    else:
        assert together == alone, path


def test_64_concurrent_requests_match_sequential_answers(client, server, monkeypatch):
    """32 one-image embedding requests, 16 one-text requests, 16 captions, all queued before any batch may run
    (the model threads are held until every request has reached its batcher, so no timing decides the batches):
    every one answered, each the same as when it was sent alone within the batching promise, in batches."""
    crops = [jpeg(name, crop=4 * i) for i, name in enumerate(["chelsea", "coffee", "astronaut", "rocket"] * 8)]
    texts = [f"a photo of {n} things" for n in range(16)]
    caption_urls = [data_url(c) for c in crops[:16]]

    def requests():
        for i, c in enumerate(crops):
            yield "POST", "/image-embeddings", {"files": [(f"image{i}", ("p.jpg", c, "image/jpeg"))]}
        for t in texts:
            yield "POST", "/text-embeddings", {"json": {"texts": [t]}}
        for u in caption_urls:
            yield "POST", "/api/v1/vision/caption/vit-gpt2", {"json": photoprism_request(images=[u])}

    plan = list(requests())
    assert len(plan) == 64
    sequential = [client.request(m, p, **kw) for m, p, kw in plan]
    assert [r.status_code for r in sequential] == [200] * 64
    pool = server[0].state.pool
    before = pool.status()["batching"]

    arrived = []                              # one entry per item that reached a batcher
    for batcher in pool._batchers.values():   # all three exist: the sequential run made them
        async def counted(item, submit=batcher.submit):
            arrived.append(item)
            return await submit(item)
        monkeypatch.setattr(batcher, "submit", counted)
    gate = threading.Event()
    held = [thread.submit(gate.wait, 120) for thread in pool._threads.values()]

    async def all_at_once():
        async with httpx.AsyncClient(base_url=server[1], timeout=300,
                                     limits=httpx.Limits(max_connections=64)) as ac:
            return await asyncio.gather(*(ac.request(m, p, **kw) for m, p, kw in plan))

    answers: list = []
    sender = threading.Thread(target=lambda: answers.extend(asyncio.run(all_at_once())))
    sender.start()
    deadline = time.monotonic() + 120
    batchers = list(pool._batchers.values())

    def still_coming() -> bool:    # a request not yet at its batcher, or an image still being decoded for it
        return len(arrived) < 64 or any(b._preparing for b in batchers)

    while still_coming() and time.monotonic() < deadline and sender.is_alive():
        time.sleep(0.05)
    queued = len(arrived) if not still_coming() else f"{len(arrived)} (some still decoding)"
    gate.set()
    sender.join(300)
    assert queued == 64, f"only {queued} of 64 requests reached a batcher while the models were held"
    assert all(h.done() for h in held) and not sender.is_alive()
    assert [r.status_code for r in answers] == [200] * 64
    for (_, path, _), alone, together in zip(plan, sequential, answers):
        if path.startswith("/api"):
            same_answer(alone.json()["result"], together.json()["result"], path)
        else:
            key = "images" if path == "/image-embeddings" else "texts"
            a, b = alone.json()[key][0], together.json()[key][0]
            va, _ = photofield.decode(a["embedding_f16_b64"], a["embedding_inv_norm_f16_uint16"])
            vb, _ = photofield.decode(b["embedding_f16_b64"], b["embedding_inv_norm_f16_uint16"])
            np.testing.assert_allclose(vb, va, atol=SCORE_TOLERANCE)
    after = pool.status()["batching"]
    grown = {task: (after[task]["items"] - before[task]["items"], after[task]["batches"] - before[task]["batches"])
             for task in after if after[task]["items"] > before[task]["items"]}
    # Held, each batcher had taken at most one batch before the rest queued: then batches of max_batch (16).
    items = {task: n for task, (n, _) in grown.items()}
    assert items == {"clip-images": 32, "clip-texts": 16, "caption-vit-gpt2": 16}, grown
    assert grown["clip-images"][1] <= 3 and grown["clip-texts"][1] <= 2 and grown["caption-vit-gpt2"][1] <= 2, grown


def test_same_answer_holds_the_promise_and_no_more():
    alone = {"caption": "a cat", "confidence": 0.8539}
    same_answer(alone, {"caption": "a cat", "confidence": 0.854})
    for other in ({"caption": "a cap", "confidence": 0.8539},
                  {"caption": "a cat", "confidence": 0.8539 - 2 * SCORE_TOLERANCE}):
        with pytest.raises(AssertionError):
            same_answer(alone, other)


def test_server_keeps_serving_after_garbage(client):
    for body in (b"{", b"\x00\xff" * 50, b'{"texts": [1, 2]}', b"[]"):
        r = client.post("/text-embeddings", content=body, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (body, r.text)
    assert client.post("/text-embeddings", json={"texts": ["still here"]}).status_code == 200
