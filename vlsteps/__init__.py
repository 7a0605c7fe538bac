"""vlsteps: the plumbing that the vision-language notebooks share. Model code stays in the notebooks."""
from .device import describe, free_memory, model_size_gb, param_count, pick_device, pick_dtype
from .images import ImageLoadError, load_image, sample_photo, sample_photos
from .models import ModelNotFoundError, model_dir, models_dir, outputs_dir
from .plotting import draw_boxes, overlay_heatmap, show_grid

__all__ = ["describe", "free_memory", "model_size_gb", "param_count", "pick_device", "pick_dtype",
           "ImageLoadError", "load_image", "sample_photo", "sample_photos", "ModelNotFoundError", "model_dir",
           "models_dir", "outputs_dir", "draw_boxes", "overlay_heatmap", "show_grid"]
