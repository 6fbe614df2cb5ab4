"""The stream consumer (`loop.Consumer`) and its parts: its config, the messages handlers get,
the dedup lookups and done-offset marks on threads of their own, per-partition offsets, the
lanes a failure holds back, and its metrics. `tailrace.streams` exports the public names."""
