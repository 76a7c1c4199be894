"""Software releases at the centre: the release key, the verified release store, rollouts in waves
and their failure alert. May import ``db``, ``fleet.rules`` (pure fleet rules) and ``muster``."""
