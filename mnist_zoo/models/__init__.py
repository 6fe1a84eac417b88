"""Model builders: each module holds one model's config class and its `build` function."""
