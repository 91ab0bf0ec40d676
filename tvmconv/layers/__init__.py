"""Layer computes: pure TE tensor expressions, one module per layer family.

Each module's ``compute(wl)`` turns a workload (see tvmconv.workload) into the TE tensors of one
kernel, inputs first and the output last. Nothing here knows a target: the block names
(``conv2d_NCHWc``, ``epilogue``, ``pool``, ...) are the contract with the schedule templates.
"""
