"""Training and evaluation engine: trainer loop, hooks, EMA, checkpoints, evaluator."""
