"""The slate policy: the EM user model over user types, the Q-network and IQL, slate rules, their trainers and loaders."""
