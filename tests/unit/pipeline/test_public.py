from __future__ import annotations

import tailrace.pipeline
import tailrace.pipeline.decoders


def test_public_names_exist_and_are_listed() -> None:
    for module in (tailrace.pipeline, tailrace.pipeline.decoders):
        assert len(set(module.__all__)) == len(module.__all__)
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == []
    assert "read_events" in tailrace.pipeline.__all__
    assert "EventFilter" in tailrace.pipeline.__all__
