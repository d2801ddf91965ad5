"""Real images as cxrsynth knows them: upstream sources, decoding and hashing, patient identity, records."""
