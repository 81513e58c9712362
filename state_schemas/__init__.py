"""Versioned definitions of every record Tailor keeps in state or emits.

- ``events``: the canonical internal event every operator consumes (input contract: the Segment Spec,
  published as ``segment_event.schema.json``).
- ``profile_state``: per-user keyed state of the segmentation job (``ProfileState``, layout version 2).
- ``segment_change``: the emitted ``tailor.segment_change/2`` event.
- ``dead_letter``: the emitted ``tailor.dead_letter/1`` record for input that could not be used.

Every payload carries its version; decoders upgrade older versions on read.
"""
