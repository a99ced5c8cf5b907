//! Causal language models on candle: the small transformer trained from scratch, the Hugging
//! Face Qwen2 loader, tokenizers, batched KV-cache sampling, scoring and checkpoints.
