import os

import pytest

# Unit tests and notebooks must never reach a hub or a real checkpoint by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="module")
def clip_path():
    """The CLIP stand-in, shared by the embedding and index tests."""
    from vlsteps import models
    from vlsteps.standins import ensure_standin
    return ensure_standin("clip", models.standins_dir())


@pytest.fixture(scope="module")
def embedder(clip_path):
    import torch
    from vlsteps.embed import ClipEmbedder
    return ClipEmbedder.from_pretrained(clip_path, device="cpu", dtype=torch.float32, batch_size=4)
