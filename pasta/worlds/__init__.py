"""The attribute worlds the embedded tier draws: garments (Fashion-MNIST) and emoji scenes, with their judges."""
