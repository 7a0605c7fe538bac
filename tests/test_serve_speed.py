"""The service's speed work (issue 20), each part held without timing anything: CLIP's pixels computed off the
processor (the same values), torch's threads chosen for the machine and said in /api/v1/status, and batches that
fill while their images are still being decoded."""
import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from conftest import SERVE_SETTINGS, jpeg, serving

from vlsteps import sample_photo
from vlsteps.images import load_image
from vlsteps.serve import photofield, threads
from vlsteps.serve.app import create_app
from vlsteps.serve.batching import SCORE_TOLERANCE, MicroBatcher
from vlsteps.serve.settings import Settings


def photos():
    """Photos of several sizes (wider, taller and smaller than the crop, odd sides) and modes."""
    base = sample_photo("chelsea")
    yield "landscape", base.resize((1023, 677))
    yield "portrait", base.resize((301, 640))
    yield "square", base.resize((224, 224))
    yield "small", base.resize((97, 61))
    yield "grey", base.resize((500, 333)).convert("L")
    yield "alpha", base.resize((330, 400)).convert("RGBA")
    yield "palette", base.resize((640, 480)).convert("P")
    yield "cmyk", base.resize((256, 300)).convert("CMYK")


@pytest.mark.parametrize("name,photo", list(photos()), ids=[n for n, _ in photos()])
def test_pixels_are_the_processors_pixel_values(embedder, name, photo):
    assert embedder.preprocess._plain is not None, "the stand-in's processor is CLIP's own: the plain path is taken"
    theirs = embedder.processor(images=[load_image(photo)], return_tensors="pt")["pixel_values"][0]
    ours = embedder.pixels(photo)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_another_processor_is_run_itself(embedder):
    from vlsteps.embed import _plain_steps
    square = type(embedder.processor.image_processor)(size={"height": 224, "width": 224})
    assert _plain_steps(square) is None and _plain_steps(object()) is None


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores,expected", [(1, 1), (2, 1), (4, 3), (16, 15)])
@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_threads_for_the_machine(monkeypatch, torch_threads, cores, expected, runtime):
    """torch leaves a core to decoding above 2 cores and runs one thread on 2; ONNX Runtime takes every core."""
    monkeypatch.setattr(threads, "cores", lambda: cores)
    chosen = threads.choose(0, runtime)
    assert chosen["torch_threads"] == torch.get_num_threads() == expected
    assert chosen["clip_threads"] == (cores if runtime == "onnx" else expected)
    assert chosen["cores"] == cores and chosen["chosen_by"].startswith("auto") and chosen["runtime"] == runtime


def test_threads_set_by_the_environment_are_applied_and_reported(monkeypatch, torch_threads):
    monkeypatch.setenv("VLSTEPS_SERVE_THREADS", "3")
    settings = Settings.from_env()
    assert settings.threads == 3
    from fastapi.testclient import TestClient
    with TestClient(create_app(settings)) as client:
        status = client.get("/api/v1/status").json()
    assert torch.get_num_threads() == 3
    assert status["threads"]["torch_threads"] == 3 == status["threads"]["clip_threads"]
    assert status["threads"]["chosen_by"] == "VLSTEPS_SERVE_THREADS"
    monkeypatch.setenv("VLSTEPS_SERVE_THREADS", "-1")
    with pytest.raises(ValueError, match="VLSTEPS_SERVE_THREADS"):
        Settings.from_env()


def test_a_batch_waits_for_items_still_being_prepared():
    """16 items whose preparing ends one after another, each past max_wait (0) of the one before, still run as one
    batch: the batch waits for items on their way."""
    release = [threading.Event() for _ in range(16)]
    prepared = [threading.Event() for _ in range(16)]
    sizes = []

    def prepare(item):
        release[item].wait(30)
        prepared[item].set()
        return item * 10

    def run(items):
        sizes.append(len(items))
        return items

    batcher = MicroBatcher(run, max_batch=16, max_wait_s=0, prepare=prepare, prepare_pool=ThreadPoolExecutor(16))

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit(i)) for i in range(16)]
        for i in range(16):
            release[i].set()
            assert await asyncio.to_thread(prepared[i].wait, 30)
            await asyncio.sleep(0.005)     # item i reaches the queue, where a batcher not waiting would take it
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [i * 10 for i in range(16)]
    assert sizes == [16]


def test_a_preparing_error_reaches_its_caller_alone():
    def prepare(item):
        if item == 2:
            raise ValueError("bad item")
        return item

    batcher = MicroBatcher(lambda items: items, max_wait_s=0.01, prepare=prepare, prepare_pool=ThreadPoolExecutor(2))

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)

    results = asyncio.run(main())
    assert results[:2] == [0, 1] and results[3] == 3 and isinstance(results[2], ValueError)
    assert batcher._preparing == 0


def test_one_image_requests_in_flight_fill_one_batch(torch_threads):
    """16 one-image requests sent at once, their decoding held until all 16 have reached the service (as a slow
    decoder or a busy machine would): one batch of 16, each answer the same as alone. Decoding used to run in the
    event loop, one image at a time, so a batch closed max_wait after the first image was decoded."""
    app = create_app(Settings(**SERVE_SETTINGS))
    crops = [jpeg(name, crop=4 * i) for i, name in enumerate(["chelsea", "coffee", "astronaut", "rocket"] * 4)]
    with serving(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        alone = [client.post("/image-embeddings", files=[("image0", ("p.jpg", c, "image/jpeg"))]) for c in crops]
        assert [r.status_code for r in alone] == [200] * 16
        pool = app.state.pool
        batcher = pool._batchers["clip-images"]
        before = dict(batcher.batch_sizes)
        gate = threading.Event()
        held = [pool._prepare.submit(gate.wait, 120) for _ in range(pool._prepare._max_workers)]

        async def all_at_once():
            async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=16)) as ac:
                return await asyncio.gather(*(ac.post("/image-embeddings", files=[("image0", ("p.jpg", c,
                                                                                              "image/jpeg"))])
                                              for c in crops))

        answers = []
        sender = threading.Thread(target=lambda: answers.extend(asyncio.run(all_at_once())))
        sender.start()
        deadline = time.monotonic() + 120
        while batcher._preparing < 16 and time.monotonic() < deadline and sender.is_alive():
            time.sleep(0.02)
        waiting = batcher._preparing
        gate.set()
        sender.join(300)
        assert waiting == 16 and all(h.done() for h in held) and not sender.is_alive()
    assert [r.status_code for r in answers] == [200] * 16
    grown = {size: n - before.get(size, 0) for size, n in batcher.batch_sizes.items() if n > before.get(size, 0)}
    assert grown == {16: 1}
    for a, b in zip(alone, answers):
        va, vb = (photofield.decode(r.json()["images"][0]["embedding_f16_b64"], 0)[0] for r in (a, b))
        np.testing.assert_allclose(vb, va, atol=SCORE_TOLERANCE)


def test_the_load_client_sends_image_groups_and_texts(torch_threads):
    """The benchmark's load: 8-image requests and text requests, each item counted once, no errors."""
    from vlsteps.serve.loadtest import load
    crops = [jpeg("coffee", crop=2 * i) for i in range(10)]
    with serving(create_app(Settings(**SERVE_SETTINGS))) as url:
        images = asyncio.run(load(url, crops, 2, per_request=8))
        texts = asyncio.run(load(url, [], 3, texts=[f"a photo of {n} cups" for n in range(7)]))
        batching = httpx.get(url + "/api/v1/status").json()["batching"]
    assert images["errors"] == 0 and texts["errors"] == 0 and images["img_s"] > 0 and texts["img_s"] > 0
    assert batching["clip-images"]["items"] == 10 and batching["clip-texts"]["items"] == 7
