"""The data itself: initial import, slices, ingest of sealed uploads, review up the chain, progress,
data sets and XLSX reports, the region tree. May import ``db``, ``devices`` and ``accounts``."""
