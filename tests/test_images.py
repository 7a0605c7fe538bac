import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from vlsteps import ImageLoadError, load_image, sample_photo, sample_photos
from vlsteps.images import SAMPLE_PHOTOS


def png_bytes(size=(40, 30), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server():
    """A local web server: a photo, a page that is not an image, a huge body, a slow one, a 404."""
    routes = {"/photo.png": png_bytes(), "/page.html": b"<html>not an image</html>", "/huge.png": b"0" * 3_000_000}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/slow.png":
                time.sleep(3)
            body = routes.get(self.path)
            if body is None and self.path != "/slow.png":
                self.send_error(404)
                return
            body = body or png_bytes()
            self.send_response(200)
            if self.path != "/huge.png":   # a server that hides the size must still be cut off
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_every_sample_photo_loads_offline_as_rgb():
    photos = sample_photos()
    assert list(photos) == list(SAMPLE_PHOTOS)
    for name, image in photos.items():
        assert image.mode == "RGB", name
        assert min(image.size) >= 200, name
        assert np.asarray(image).std() > 10, f"{name} looks blank"


def test_unknown_sample_photo_names_the_choices():
    with pytest.raises(KeyError, match="chelsea"):
        sample_photo("dog")


def test_local_file_grayscale_becomes_rgb(tmp_path):
    path = tmp_path / "gray.png"
    path.write_bytes(png_bytes(mode="L"))
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (40, 30)


def test_missing_file_and_non_image_file_say_so(tmp_path):
    with pytest.raises(ImageLoadError, match="No such image file"):
        load_image(tmp_path / "nope.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(ImageLoadError, match="not a readable image"):
        load_image(text)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (5000, 5000)).save(path)        # compresses to a few KB, 25 M pixels
    with pytest.raises(ImageLoadError, match="pixel limit"):
        load_image(path, max_pixels=1_000_000)


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes() + b"\0" * 2000)
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(path, max_bytes=1000)


def test_url_photo(server):
    assert load_image(f"{server}/photo.png").size == (40, 30)


def test_url_errors_are_one_clear_message(server):
    with pytest.raises(ImageLoadError, match="not a readable image"):
        load_image(f"{server}/page.html")
    with pytest.raises(ImageLoadError, match="Could not fetch"):
        load_image(f"{server}/missing.png")
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(f"{server}/huge.png", max_bytes=1_000_000)
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match="Could not fetch"):
        load_image(f"{server}/slow.png", timeout=0.5)
    assert time.perf_counter() - start < 2.5
    with pytest.raises(ImageLoadError, match="scheme"):
        load_image("ftp://example.com/cat.jpg")


def test_pil_image_passes_through_as_rgb():
    assert load_image(Image.new("RGBA", (5, 5))).mode == "RGB"
