"""Clinical measurements of adversarial ECGs: physical lead space, ST deviation, MI criteria, reader studies.

`leads` (Einthoven/Goldberger), `st` (beats, median beat, ST deviation), `criteria` (Fourth Universal Definition
of MI, ST elevation), `measure` (the per-attack bundle), `reader_study` (blinded decks and their scoring).
"""
