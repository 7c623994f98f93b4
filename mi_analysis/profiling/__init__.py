"""What a training step costs: FLOPs (torch's FlopCounterMode), bytes saved for backward and
allocator-level bytes (memory meters), timing. Used by the trainer, `describe` and the benchmarks."""
