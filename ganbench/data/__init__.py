"""Image sources decoded once into cached uint8 stores (N x C x H x W) with labels and metadata."""

from ganbench.data.store import SOURCES, ImageStore, cache_dir, load_images

__all__ = ["SOURCES", "ImageStore", "cache_dir", "load_images"]
