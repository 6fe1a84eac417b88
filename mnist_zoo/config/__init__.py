"""The run config: typed sections and specs with their defaults, YAML loading, --set overrides, bundled configs, the generated reference."""
