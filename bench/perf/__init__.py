"""``make bench-perf``: what the harness and the masking cost next to the training they wrap.

Sections: 1 masking, 2 per method, 8 1D layers (``steps``), 3 harness, 4 scaling, 6 end to
end (``harness``), 5 reporting at scale (``reporting``), 7 memory (``memory``), 9 where the
time goes and 10 whole targets (``split``; 10's timed runs only with ``--sections targets``).
``python -m bench.perf`` runs them and writes results/perf/<date>-<host>.parquet and
reports/perf/perf.md.
"""
