"""Pruning-stable methods: they sparsify while training, are hard-pruned at the end and
fine-tuned with FT (``stable``). GMP, DPF, DNW, GSM and LC are given a goal sparsity; STR,
CS and DST learn theirs (``learned``)."""
