// Anchors the precompiled torch headers shared by tests and examples.
