"""Several processes index overlapping and disjoint items into one index and query it at once; afterwards
every item is there, in the count, by search and by get with its vector.

Against the embedded on-disk client (what two open notebooks share) and against one `chroma run` server
(the `chroma_server_url` fixture of conftest.py). Items are tiny pictures; the fake embedder turns each
into a random unit vector seeded by its pixels, so no model runs and a vector can be checked afterwards.
The collection saves its index every 50 records instead of 1,000 (the moment processes used to overwrite
each other's work), so a few hundred items show what took thousands. Everything, the final read included,
runs in the worker processes under a deadline: a broken index can also hang, and a hang must fail.
"""
import multiprocessing

import numpy as np
import pytest

import stress_jobs as jobs
from vlsteps import index

DEADLINE_S = 120


@pytest.fixture(scope="module")
def pool():
    """One spawned process per writer, started and warm before any test races them; killed at the end."""
    pool = multiprocessing.get_context("spawn").Pool(jobs.WRITERS)
    try:
        pool.map_async(jobs.warm_up, range(jobs.WRITERS), chunksize=1).get(DEADLINE_S)
        yield pool
    finally:
        pool.terminate()
        pool.join()


@pytest.fixture(params=["embedded", "server"])
def where(request, tmp_path):
    if request.param == "embedded":
        return str(tmp_path / "chroma")
    url = request.getfixturevalue("chroma_server_url")
    server = index.chroma_client(url=url)
    for col in server.list_collections():
        server.delete_collection(col.name)
    return url


def test_processes_indexing_one_index_at_once_lose_nothing(pool, where):
    jobs.create(where)
    writers = [pool.apply_async(jobs.write, (where, k)) for k in range(jobs.WRITERS)]
    seen = [w.get(DEADLINE_S) for w in writers]
    assert all(found == n for each in seen for n, found in each), seen   # each search found all it counted

    back = pool.apply_async(jobs.read_back, (where,)).get(DEADLINE_S)
    expected = {index.content_id(jobs.picture(i)): i for i in range(jobs.UNIQUE)}
    assert back["sync_threshold"] == jobs.SYNC_THRESHOLD
    assert back["count"] == len(expected)
    assert sorted(back["ids"]) == sorted(back["found"]) == sorted(expected)
    assert [expected[id_] for id_ in back["ids"]] == back["items"]
    np.testing.assert_allclose(back["embeddings"], [jobs.vector(jobs.picture(expected[id_]).tobytes())
                                                    for id_ in back["ids"]], atol=1e-6)
