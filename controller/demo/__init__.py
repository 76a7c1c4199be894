"""``muster demo`` and one-machine trials: an in-process broker and a simulated fleet beside a real
controller. May import every room; only ``cli`` imports it."""
