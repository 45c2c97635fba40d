"""envbot: pins image and model digests in an environments repo and promotes them through Git."""
