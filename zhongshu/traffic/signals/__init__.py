"""Adaptive signal control evaluated in SUMO: a harness (:mod:`.sim`), the benchmark
metrics, and controllers behind one interface (:mod:`.controllers`)."""
