"""redis-provision: a YAML inventory in, a verified Redis master/replica/Sentinel deployment out."""
