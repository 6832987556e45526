"""The demo: `python -m ingestion_pipelines.demo.run` (`make demo`), its settings in the config
chain (`config`) and the live page's demo feed (`live`)."""
