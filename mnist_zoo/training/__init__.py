"""The train stage: compile, the resumable loop, its callbacks, checkpoints, interrupts and fast paths."""
