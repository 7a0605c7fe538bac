"""A bounded schemathesis run over the service's OpenAPI schema: whatever it sends, no 5xx (on stand-ins)."""
import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from vlsteps.captioner.train import Config, train
from vlsteps.net import AddressPolicy
from vlsteps.serve.app import create_app
from vlsteps.serve.settings import Settings

CHROMA = tempfile.mkdtemp(prefix="vlsteps-serve-fuzz-")     # /search reads an index of its own
CAPTIONER_RUN = f"{tempfile.mkdtemp(prefix='vlsteps-serve-fuzz-')}/captioner"   # POST /caption's, one step trained
APP = create_app(Settings(max_new_tokens=4, policy=AddressPolicy(allow_private=False), fetch_timeout_s=2,
                          chroma_path=CHROMA, captioner_run=CAPTIONER_RUN))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def loaded_models():
    """Loaded before the run, so that a first load is not taken for a hang by the transport's read timeout."""
    APP.state.pool.labeler()
    train(Config(artifact_dir=CAPTIONER_RUN, n_train=64, epochs=1, max_steps=1, embed_dim=32, ff_dim=64,
                 batch_size=16, seq_length=16, threads=1, samples=1), echo=lambda *_: None)


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error], timeout=60)


def test_every_route_is_in_the_schema():
    paths = set(APP.openapi()["paths"])
    assert {"/api/v1/vision/caption", "/api/v1/vision/caption/{model}", "/api/v1/vision/labels",
            "/api/v1/vision/labels/{model}", "/api/v1/vision/describe",
            "/api/v1/vision/describe/kosmos-2/patch14-224", "/api/v1/vision/describe/vit-gpt2-image-captioning",
            "/api/v1/vision/describe/blip-image-captioning-large", "/text-embeddings", "/image-embeddings",
            "/search", "/caption", "/health", "/api/v1/status"} <= paths


pytestmark = pytest.mark.filterwarnings("ignore")
