"""Speed and accuracy measurements. ``python -m benchmarks [topic ...]`` runs ``bench_<topic>.main()``."""
