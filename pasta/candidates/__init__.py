"""Candidate prompt expansions: cleaning model output, the language-model and retrieval generators, the phrase bank, prefetching."""
