"""Cross-comparison with other departments' data (S-10, S-23): their extracts, the linkage to our
records, the findings and deaths it yields, and the runs. May import ``accounts``, ``db`` and ``records``."""
