"""Training: the loop (step, epoch, checkpoints), evaluation, batches and data parallelism."""
