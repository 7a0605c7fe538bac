"""One card per checkpoint (`card.Card`), in one module per model family; `vlsteps.registry` maps keys to them."""
