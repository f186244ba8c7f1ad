"""The wizard: a generic step engine and the one view that serves every step of every guide."""
