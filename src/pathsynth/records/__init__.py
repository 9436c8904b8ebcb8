"""The typed records that cross stage boundaries: what ``results.json`` holds
(:mod:`~pathsynth.records.schema`) and the condition names an experiment compares
(:mod:`~pathsynth.records.conditions`). Below both the experiment, which writes them, and the
report, which reads them."""
