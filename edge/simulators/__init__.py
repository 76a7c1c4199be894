"""Stand-ins on real transports for hardware and people: the SAM reader on a pty, virtual PC/SC
cards, a camera from files, the simulated collector, and the load fleet. Used by tests and the demo."""
