"""Pure rules of the Vietnamese market shared by its sources: unit normalisation (`units`), the
exchanges' price steps (`price_steps`) and backward price adjustment for corporate events
(`adjustment`). The trading calendar (`calendar`, with its reviewed CSVs) too. Nothing here imports Dagster."""
