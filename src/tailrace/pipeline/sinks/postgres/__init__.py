"""The PostgreSQL sink: sink.py (`PostgresSink`, its mappings and checkpoints, and
`PostgresDeadLetterSink`) and tables.py (existing tables adopted for the ``log`` mapping)."""
