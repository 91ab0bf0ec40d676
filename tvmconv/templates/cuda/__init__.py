"""CUDA schedule templates: thread blocks, shared-memory staging, accumulators in registers."""
