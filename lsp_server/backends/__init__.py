"""Generation backends: the engine contract and what implements it."""
