"""Data sets (IDX, npz, folders), their download with checksums, and batches for training."""
