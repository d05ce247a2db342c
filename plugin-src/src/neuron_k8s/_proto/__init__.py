"""gRPC stubs generated from plugin-src/proto at build time (see plugin-src/setup.py)."""
