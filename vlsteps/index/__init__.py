"""The image index in Chroma (`store`: collections per model, content ids, search) and the command that fills it
from folders of photos (`build`, `python -m vlsteps.index build PATH...`; `search` queries it from the shell)."""
from .store import (ENV_URL, SPACES, DimensionMismatchError, Hit, _settings, all_ids, check_dim, check_finite,
                    chroma_client, collection_dim, collection_name, content_id, describe_client, image_collection,
                    index_images, metadatas, precision_at_k, search_by_image, search_by_text, search_by_vector)

__all__ = ["ENV_URL", "SPACES", "DimensionMismatchError", "Hit", "_settings", "all_ids", "check_dim", "check_finite",
           "chroma_client", "collection_dim", "collection_name", "content_id", "describe_client", "image_collection",
           "index_images", "metadatas", "precision_at_k", "search_by_image", "search_by_text", "search_by_vector"]
