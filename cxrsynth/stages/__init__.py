"""The stages, in the order data flows: ingest, split, plan, translate, generate, release, audit, load, benchmark."""
