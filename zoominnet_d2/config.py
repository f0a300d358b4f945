"""Config keys of ZoomInNet (placeholder, filled by the method)."""


def add_zoominnet_config(cfg):
    return cfg
