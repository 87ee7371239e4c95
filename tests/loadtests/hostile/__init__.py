"""A misbehaving server and the tests that drive rtcap's clients against it."""
