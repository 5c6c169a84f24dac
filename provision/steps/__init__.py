"""Steps of a deploy; each takes a HostRun and uses primitives, so each is idempotent."""
