"""Analytics transforms of the analyze workflow: moving average, prior close, quote enrichment, bars,
daily metrics, exchange share and market summary. Each module registers one transform."""
