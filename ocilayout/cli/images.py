"""Image commands (copy, inspect, manifest-digest, list-tags, images, tag, delete, gc, fsck)."""
