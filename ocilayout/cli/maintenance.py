"""Layout maintenance commands (gc, fsck, images)."""
