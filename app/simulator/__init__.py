"""Store simulators: they play a platform over real HTTP for tests and the demo."""
