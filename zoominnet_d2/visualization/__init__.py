"""Feature maps of the cross-scale distillation, drawn (the paper's Figures 5 and 9).

- :mod:`.inputs`: one image's dataset dict and its deterministic student/teacher views;
- :mod:`.introspection`: :func:`collect_distillation_maps`, what the model distils for it;
- :mod:`.rendering`: heatmaps, mask overlays and ground truth (Detectron2's ``Visualizer``);
- :mod:`.panels`: :func:`draw_feature_panels`, the full-size pictures and the level panels.

The TensorBoard hook that draws them during training is
:class:`zoominnet_d2.engine.feature_hook.FeatureVisualizationHook`.
"""
from .inputs import load_image_dict, visualization_mapper
from .introspection import collect_distillation_maps, unwrap_model, valid_grid_sizes
from .panels import DEFAULT_TILE_SIZE, PANEL_KINDS, draw_feature_panels
from .rendering import DEFAULT_MAX_SIZE, MASK_COLOR, display_size, draw_ground_truth, feature_heatmap
from .rendering import mask_to_image, overlay_heatmap, overlay_mask

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TILE_SIZE",
    "MASK_COLOR",
    "PANEL_KINDS",
    "collect_distillation_maps",
    "display_size",
    "draw_feature_panels",
    "draw_ground_truth",
    "feature_heatmap",
    "load_image_dict",
    "mask_to_image",
    "overlay_heatmap",
    "overlay_mask",
    "unwrap_model",
    "valid_grid_sizes",
    "visualization_mapper",
]

