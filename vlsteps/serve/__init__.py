"""`python -m vlsteps.serve`: the collection's models as an HTTP vision service.

Three APIs on one FastAPI app (`app.create_app`): PhotoPrism's Vision API (captions, labels), its older
describe routes, and Photofield AI's embedding routes plus a search over the Chroma index. Models load on first
use through `vlsteps.checkpoint.model_dir`; concurrent requests for one model run as one batch (`batching`).
"""
