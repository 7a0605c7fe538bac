"""vlsteps serve against the clients it speaks to, judged by their own source: every field, status code and content
type PhotoPrism's vision client, photoprism-vision's describe service and Photofield's AI client send or read.

Sources, by repository and commit (the files' versions these tests were written from):
  PP   photoprism/photoprism
       internal/ai/vision/api_client.go @00a52fbe    internal/ai/vision/api_request.go @b731d949
       internal/ai/vision/api_response.go @2fe58f4e  internal/ai/vision/labels.go @0a2dcc9b
       internal/ai/vision/caption.go @32e93cb8       internal/ai/vision/ollama/const.go @03ad662d
       internal/photoprism/mediafile_vision.go @1f0ec750  internal/api/vision_labels.go @75ce4cf4
       internal/api/vision_caption.go @176df78c      pkg/http/header/auth.go @e3848a03   pkg/media/data_url.go
  PV   photoprism/photoprism-vision describe/app.py @2d0e87d
  PF   SmilyOrg/photofield internal/ai/client.go, internal/ai/embedding.go @64a66fc9
  PFA  SmilyOrg/photofield-ai main.py @379ad6e2
All on stand-in models.
"""
import base64
import io
import uuid

import numpy as np
import pytest
from conftest import data_url, jpeg
from fastapi.testclient import TestClient

from vlsteps import sample_photo
from vlsteps.cards.blip2 import blip2_prompt
from vlsteps.serve import captioners, photofield
from vlsteps.serve.app import create_app
from vlsteps.serve.labels import ZeroShotLabeler, merge
from vlsteps.serve.settings import Settings

# PP ollama/const.go:29 (CaptionPrompt): sent with every caption request unless vision.yml sets a Prompt
# (PP caption.go:57, apiRequest.Prompt = model.GetPrompt(); model.go GetPrompt falls back to it).
PHOTOPRISM_CAPTION_PROMPT = ("Create a caption with exactly one sentence in the active voice that describes the main "
                             "visual content. Begin with the main subject and clear action. Avoid text formatting, "
                             "meta-language, and filler words.")

# The Go types PhotoPrism decodes a response into (PP api_client.go:80, json.Unmarshal into ApiResponse): a value
# of another JSON type fails the whole response. ApiResponse: api_response.go:17-23; Model: model.go's json tags;
# ApiResult: api_response.go:55-60; CaptionResult: :72-76; LabelResult: :79-88.
GO_RESPONSE = {"id": str, "code": int, "error": str, "model": dict, "result": dict}
GO_MODEL = {"type": str, "name": str, "version": str, "resolution": int}
GO_RESULT = {"labels": list, "caption": dict}
GO_CAPTION = {"text": str, "source": str, "confidence": float}
GO_LABEL = {"name": str, "source": str, "priority": int, "confidence": float, "topicality": float,
            "categories": list, "nsfw": bool, "nsfw_confidence": float}


def go_decodes(value, fields: dict) -> None:
    """Asserts encoding/json would decode `value` into a struct with these fields (null leaves a zero value)."""
    for key, kind in fields.items():
        got = value.get(key)
        if got is None:
            continue
        if kind is float:
            assert isinstance(got, (int, float)) and not isinstance(got, bool), (key, got)
        elif kind is int:    # Go refuses 1.0 for an int
            assert isinstance(got, int) and not isinstance(got, bool), (key, got)
        else:
            assert isinstance(got, kind), (key, got)


def photoprism_decodes(response) -> dict:
    """The body as PhotoPrism's client reads it, whatever the status (it only logs a status >= 300,
    PP api_client.go:82-83), checked against the Go types above."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    go_decodes(body, GO_RESPONSE)
    go_decodes(body.get("model") or {}, GO_MODEL)
    result = body.get("result") or {}
    go_decodes(result, GO_RESULT)
    go_decodes(result.get("caption") or {}, GO_CAPTION)
    for label in result.get("labels") or []:
        go_decodes(label, GO_LABEL)
    return body


def photoprism_sends(images, prompt="", **fields) -> dict:
    """A request body as PhotoPrism marshals it (PP api_request.go:76-93, ApiRequest with its omitempty tags):
    a fresh UUID id (:183), the model name and version from vision.yml (labels.go:73-74), `suffix` and `stream`
    always, data URLs of the thumbnails (NewApiRequestImages, :154-175: media.DataUrl). Newer releases add
    `org`, `project`, `schema` and more options, all of which the service must accept."""
    body = {"id": str(uuid.uuid4()), "model": "", "version": "latest", "suffix": "", "stream": False,
            "images": list(images), **fields}
    if prompt:
        body["prompt"] = prompt
    return body


def thumbnails(name="astronaut"):
    """PhotoPrism's three labels thumbnails of a non-square photo: tile_224 (the centre square), left_224 and
    right_224 (PP mediafile_vision.go:95-97), as JPEG data URLs."""
    photo = sample_photo(name).resize((336, 224))
    out = []
    for left in (56, 0, 112):
        buf = io.BytesIO()
        photo.crop((left, 0, left + 224, 224)).save(buf, "JPEG", quality=90)
        out.append(data_url(buf.getvalue()))
    return out


# --- PhotoPrism: caption and labels ------------------------------------------------------------------------
def test_photoprism_caption_request_as_sent_and_answer_as_read(client):
    """PP caption.go:50-61 fills model, version, prompt and options (temperature, model.go GetOptions); the answer
    must carry `result.caption` (caption.go:67-68: without it, "invalid caption model response")."""
    request = photoprism_sends([data_url(jpeg())], PHOTOPRISM_CAPTION_PROMPT, model="kosmos-2",
                               options={"temperature": 0.1}, org="", project="", format="json",
                               schema={"type": "object"}, context=[1, 2, 3])
    r = client.post("/api/v1/vision/caption", json=request)       # api_client.go:33, Content-Type: application/json
    assert r.status_code == 200, r.text
    body = photoprism_decodes(r)
    assert body["id"] == request["id"] and body["code"] == 200
    assert body["model"]["type"] == "caption" and body["model"]["name"] == "kosmos-2"
    assert body["result"]["caption"]["text"] and body["result"]["caption"]["source"] == "image"


def test_photoprism_labels_of_a_square_photo(client):
    """One tile_224 for a square photo (PP mediafile_vision.go:91-93). PhotoPrism reads result.labels
    (labels.go:110-111); a confidence of 0 would read as 80 % (api_response.go:95-96), so none is 0."""
    request = photoprism_sends([thumbnails()[0]], "Analyze the image and return label objects with name, confidence "
                               "(0-1), and topicality (0-1).", model="clip", options={"num_predict": 20})
    r = client.post("/api/v1/vision/labels", json=request)
    assert r.status_code == 200, r.text
    body = photoprism_decodes(r)
    assert body["id"] == request["id"] and body["model"]["type"] == "labels" and body["model"]["name"] == "clip"
    labels = body["result"]["labels"]
    assert 0 < len(labels) <= 20 and all(0 < label["confidence"] <= 1 for label in labels)
    assert all(0 <= label["topicality"] <= 1 and label["categories"] == [] for label in labels)


@pytest.fixture(scope="module")
def six_labels(tmp_path_factory, monkeypatch_module):
    """An app whose labels vocabulary has six words, so every image's answer holds all of them."""
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("astronaut\nrocket\ncat\ncoffee\nmoon\nflag\n")
    monkeypatch_module.setenv("VLSTEPS_SERVE_LABELS", str(path))
    with TestClient(create_app(Settings.from_env())) as c:
        yield c


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_photoprism_three_thumbnails_give_labels_merged_as_photoprism_does(six_labels):
    """A non-square photo's labels request holds three thumbnails (PP mediafile_vision.go:95-97). It was refused
    (400), which PhotoPrism only logs (api_client.go:82-83), so such photos got no labels. PhotoPrism's own server
    labels each image and merges them (labels.go:115-131, mergeLabels :146-181: a label seen again keeps the lowest
    uncertainty, i.e. the highest confidence, and the rest of its first sighting), then sorts (:140)."""
    views = thumbnails()
    alone = []
    for view in views:
        r = six_labels.post("/api/v1/vision/labels", json=photoprism_sends([view], options={"num_predict": 6}))
        assert r.status_code == 200, r.text
        alone.append({label["name"]: label for label in r.json()["result"]["labels"]})
    r = six_labels.post("/api/v1/vision/labels", json=photoprism_sends(views, options={"num_predict": 6}))
    assert r.status_code == 200, r.text
    labels = photoprism_decodes(r)["result"]["labels"]
    assert [label["name"] for label in labels] and len({label["name"] for label in labels}) == len(labels)
    assert {label["name"] for label in labels} == set().union(*alone)
    for label in labels:
        sightings = [view[label["name"]] for view in alone if label["name"] in view]
        assert label["confidence"] == pytest.approx(max(s["confidence"] for s in sightings), abs=2e-4)
        assert label["topicality"] == pytest.approx(sightings[0]["topicality"], abs=2e-4)
    confidences = [label["confidence"] for label in labels]
    assert confidences == sorted(confidences, reverse=True)


def test_merge_follows_photoprism_merge_labels():
    """PP labels.go:146-181 on two views: "cat" seen twice keeps its higher confidence and its first topicality."""
    first = [{"name": "cat", "confidence": 0.4, "topicality": 0.3}, {"name": "rug", "confidence": 0.2,
                                                                     "topicality": 0.1}]
    second = [{"name": "cat", "confidence": 0.7, "topicality": 0.9}, {"name": "sofa", "confidence": 0.5,
                                                                      "topicality": 0.6}]
    assert merge([first, second]) == [{"name": "cat", "confidence": 0.7, "topicality": 0.3},
                                      {"name": "sofa", "confidence": 0.5, "topicality": 0.6},
                                      {"name": "rug", "confidence": 0.2, "topicality": 0.1}]
    assert first[0]["confidence"] == 0.4, "merge must not change its input"


def test_a_label_whose_confidence_rounds_to_zero_is_left_out():
    """PhotoPrism reads confidence 0 as unknown and files the label at 80 % (PP api_response.go:95-96)."""
    class Embedder:
        logit_scale = 100.0

        def prompt_ensemble(self, names, templates):
            return np.eye(len(names), dtype=np.float32)

    labeler = ZeroShotLabeler(Embedder(), ["cat", "dog", "car"])
    labels = labeler.labels(np.array([[1, 0, 0]], dtype=np.float32), k=3)[0]
    assert [label["name"] for label in labels] == ["cat"] and labels[0]["confidence"] == 1.0


def test_a_caption_of_several_images_is_refused_with_a_reason(client):
    """PhotoPrism sends one thumbnail per caption (PP mediafile_vision.go:46) and its own server answers one caption
    per request (vision_caption.go:63, NewCaptionResponse); this service's caption models see one image, so
    several are a 400 (the status PhotoPrism's server gives a caption it cannot make, vision_caption.go:66-68)
    that says what to do, not a caption of one of them."""
    r = client.post("/api/v1/vision/caption", json=photoprism_sends(thumbnails()))
    assert r.status_code == 400
    body = photoprism_decodes(r)
    assert body["code"] == 400 and "one request per image" in body["error"]


def test_photoprisms_default_prompt_becomes_each_models_own(client):
    """PhotoPrism sends its Ollama caption instruction to every caption model (PP ollama/const.go:29,
    caption.go:57). Kosmos-2 ignores prompts; BLIP-2 OPT cannot follow an instruction and captions on its own, as
    with no prompt; Qwen-VL reads it in its chat template. /api/v1/status says so for every model."""
    def caption(model, prompt):
        r = client.post(f"/api/v1/vision/caption/{model}", json=photoprism_sends([data_url(jpeg())], prompt))
        assert r.status_code == 200, r.text
        return photoprism_decodes(r)["result"]["caption"]

    assert caption("kosmos-2", PHOTOPRISM_CAPTION_PROMPT) == caption("kosmos-2", "")
    assert caption("blip2", PHOTOPRISM_CAPTION_PROMPT) == caption("blip2", "")
    assert caption("blip2", "What is this?") != caption("blip2", "")
    assert caption("qwen-vl", PHOTOPRISM_CAPTION_PROMPT) != caption("qwen-vl", "")
    status = client.get("/api/v1/status").json()
    assert set(status["caption_prompts"]) == set(captioners.MODELS)
    assert "Question: <question> Answer:" in status["caption_prompts"]["blip2"]


@pytest.mark.parametrize("prompt,text", [
    ("What is in the picture?", "Question: What is in the picture? Answer:"),   # vlsteps.prompts.QA_TEMPLATE
    ("Question: what? Answer:", "Question: what? Answer:"),
    (PHOTOPRISM_CAPTION_PROMPT, None), ("", None), (None, None)])
def test_blip2_prompt_format(prompt, text):
    assert blip2_prompt(prompt) == text


def test_a_non_image_data_url_is_refused_as_not_an_image(client):
    """PhotoPrism's data URL names the detected type, parameters after "; " (PP pkg/media/data_url.go, DataUrl:
    mimetype.Detect, then "data:%s;base64,%s"): a text file becomes data:text/plain; charset=utf-8;base64,..."""
    url = "data:text/plain; charset=utf-8;base64," + base64.b64encode(b"a shopping list").decode()
    for path in ("/api/v1/vision/caption", "/api/v1/vision/labels"):
        r = client.post(path, json=photoprism_sends([url]))
        assert r.status_code == 415, r.text
        assert "text/plain, not an image" in photoprism_decodes(r)["error"]


def test_photoprisms_bearer_key():
    """`Service.Key` goes out as "Authorization: Bearer <key>" (PP api_client.go:36-37, header/auth.go:75); a
    refusal is an ApiResponse too."""
    with TestClient(create_app(Settings(token="k3y"))) as c:
        request = photoprism_sends([data_url(jpeg())])
        denied = c.post("/api/v1/vision/labels", json=request)
        assert denied.status_code == 401 and photoprism_decodes(denied)["code"] == 401
        ok = c.post("/api/v1/vision/labels", json=request, headers={"Authorization": "Bearer k3y"})
        assert ok.status_code == 200 and photoprism_decodes(ok)["result"]["labels"]


# --- photoprism-vision's describe service (legacy) ---------------------------------------------------------
DESCRIBE = [   # route, its answer's model: PV describe/app.py:164, 170, 177 (by `model`), 210, 235, 261 (by route)
    ("/api/v1/vision/describe", {}, {"name": "kosmos-2", "version": "patch14-224"}),
    ("/api/v1/vision/describe", {"model": "kosmos-2"}, {"name": "kosmos-2", "version": "patch14-224"}),
    ("/api/v1/vision/describe", {"model": "vit-gpt2-image-captioning"},
     {"name": "vit-gpt2-image-captioning", "version": "latest"}),
    ("/api/v1/vision/describe", {"model": "blip-image-captioning-large"},
     {"name": "blip-image-captioning-large", "version": "latest"}),
    ("/api/v1/vision/describe/kosmos-2/patch14-224", {}, {"name": "kosmos-2", "version": "patch14-224"}),
    ("/api/v1/vision/describe/vit-gpt2-image-captioning", {},
     {"name": "vit-gpt2-image-captioning", "version": "latest"}),
    ("/api/v1/vision/describe/blip-image-captioning-large", {},
     {"name": "blip-image-captioning-large", "version": "latest"}),
]


@pytest.mark.parametrize("path,fields,model", DESCRIBE)
def test_describe_answers_as_upstream(client, path, fields, model):
    """GET reads the query, POST a JSON object (PV app.py:142-151); the id comes back, or a new UUID
    (:163-165); the answer is JSON {id, result: {caption}, model: {name, version}}."""
    url = data_url(jpeg("astronaut"))
    for r in (client.get(path, params={"url": url, "id": "abc", **fields}),
              client.post(path, json={"url": url, "id": "abc", **fields})):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json()["id"] == "abc" and r.json()["model"] == model and isinstance(r.json()["result"]["caption"], str)
    assert uuid.UUID(client.post(path, json={"url": url, **fields}).json()["id"])


@pytest.mark.parametrize("path", sorted({path for path, _, _ in DESCRIBE}))
def test_describe_refuses_as_upstream(client, path):
    """No `url` (or an empty one) is 400 "URL is required" (PV app.py:153-154); a POST that is not JSON is 400
    "Request must be JSON" (:143-144). Both bodies say what went wrong in `error`."""
    for r, says in ((client.get(path), "URL is required"), (client.get(path, params={"url": ""}), "URL is required"),
                    (client.post(path, json={"id": "abc"}), "URL is required"),
                    (client.post(path, data={"url": data_url(jpeg())}), "Request must be JSON"),
                    (client.post(path, content=b"url=x", headers={"Content-Type": "text/plain"}),
                     "Request must be JSON")):
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/json" and says in r.json()["error"]


# --- Photofield ------------------------------------------------------------------------------------------
def test_photofield_text_embedding_as_its_client_reads_it(client, server):
    """PF client.go:154-166: POST /text-embeddings, application/json {"texts": [text]}; it reads texts[0]'s
    embedding_f16_b64 (standard base64, :188) and embedding_inv_norm_f16_uint16 (a uint16, :192), and scores
    dot(a, b) * inv_a * inv_b (embedding.go:53-58). Here vectors are unit length (inverse norm 1.0, float16 bits
    0x3C00); photofield-ai sends them raw (PFA main.py:74-78): the cosine is the same."""
    r = client.post("/text-embeddings", json={"texts": ["a photo of a cat"]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    item = r.json()["texts"][0]
    assert item["text"] == "a photo of a cat" and isinstance(item["embedding_inv_norm_f16_uint16"], int)
    assert 0 <= item["embedding_inv_norm_f16_uint16"] <= 0xFFFF
    vector = np.frombuffer(base64.b64decode(item["embedding_f16_b64"], validate=True), "<f2").astype(np.float32)
    inverse_norm = float(np.array(item["embedding_inv_norm_f16_uint16"], "<u2").view("<f2"))
    assert item["embedding_inv_norm_f16_uint16"] == 0x3C00 and inverse_norm == 1.0
    want = server[0].state.pool.embedder().texts(["a photo of a cat", "a photo of a dog"])
    other = client.post("/text-embeddings", json={"texts": ["a photo of a dog"]}).json()["texts"][0]
    other_vector, other_inverse = photofield.decode(other["embedding_f16_b64"], other["embedding_inv_norm_f16_uint16"])
    photofield_cosine = float(vector @ other_vector) * inverse_norm * other_inverse
    assert photofield_cosine == pytest.approx(float(want[0] @ want[1]), abs=2e-3)


def test_photofield_image_embedding_as_its_client_sends_it(client):
    """PF client.go:97-113: one multipart file in field "image", named "image", POST /image-embeddings; it reads
    images[0] (:133-141). No file at all is photofield-ai's 400 (PFA main.py:96-97)."""
    r = client.post("/image-embeddings", files={"image": ("image", jpeg(), "application/octet-stream")})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    item = r.json()["images"][0]
    assert (item["field"], item["filename"]) == ("image", "image")
    assert len(base64.b64decode(item["embedding_f16_b64"], validate=True)) % 2 == 0
    assert isinstance(item["embedding_inv_norm_f16_uint16"], int)
    empty = client.post("/image-embeddings", content=b"--x--\r\n",
                        headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert empty.status_code == 400


def test_photofield_faces_are_not_served(client):
    """With `ai.host` set, Photofield also POSTs /faces (PF client.go:65-70, 230) and, on any status but 200, turns
    face detection off for an hour (:246-254). This service has no face model: the README says so."""
    r = client.post("/faces", files={"image": ("image", jpeg(), "application/octet-stream")})
    assert r.status_code == 404


# --- the captioning document's POST /caption ---------------------------------------------------------------
def test_caption_upload_is_read_before_the_captioner_is_loaded(tmp_path):
    """A bad upload is the client's error (422) even when no captioner is trained (which is the server's, 503)."""
    with TestClient(create_app(Settings(captioner_run=str(tmp_path / "no-run")))) as c:
        bad = c.post("/caption", files={"file": ("x.jpg", b"\xff\xd8not a jpeg", "image/jpeg")})
        assert bad.status_code == 422 and "not a readable image" in bad.json()["error"]
        assert c.post("/caption", files={"file": ("x.jpg", jpeg(), "image/jpeg")}).status_code == 503
