"""vlsteps: the plumbing that the vision-language notebooks share. Model code stays in the notebooks.

Names are imported lazily, so command-line tools (`python -m vlsteps.download --list`) start without torch.
"""
import importlib
import logging

# bitsandbytes (in the requirements for QLoRA; transformers imports it when a model loads with a device_map) tries to
# fetch a faster CPU kernel from the Hub on import and warns when it cannot: offline it never can, and its own kernel
# runs instead. Set here, before any model loads, so no notebook shows a learner that line.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

_EXPORTS = {
    "checkpoint": ["IncompleteModelError", "ModelNotFoundError", "model_dir"],
    "device": ["describe", "free_memory", "model_size_gb", "param_count", "pick_device", "pick_dtype"],
    "generation": ["token_budget"],
    "images": ["ImageLoadError", "load_image", "sample_photo", "sample_photos", "save_photos"],
    "paths": ["models_dir", "outputs_dir"],
    "plotting": ["draw_boxes", "overlay_heatmap", "show_grid"],
    "standins": ["is_standin"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'vlsteps' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
