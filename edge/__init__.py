"""The collection device: the daemon and its supervised tasks, the clerks' console, drivers,
sealer and outbox, licence guard, links to the centre, updates. Imports ``muster`` only."""
