"""The gRPC surface: one servicer per file, the mutual-TLS admission rule, the guard against
undecodable requests, and the servers. Calls the other rooms; only ``app`` imports it."""
