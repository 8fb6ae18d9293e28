"""Speed and memory benchmarks, each printing a table: `mol bench model`, `mol bench preprocess`."""
