//! Seeded random streams, one per component (task sampling, action sampling, minibatch order,
//! evaluation), so that a component's draws never shift another's and a run can be resumed
//! bit for bit from the saved stream positions.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The ChaCha stream ids of the components.
const TASKS: u64 = 1;
const SAMPLING: u64 = 2;
const MINIBATCH: u64 = 3;
const EVAL: u64 = 4;

/// The training run's random streams.
#[derive(Debug, Clone)]
pub struct Streams {
    pub tasks: ChaCha8Rng,
    pub sampling: ChaCha8Rng,
    pub minibatch: ChaCha8Rng,
}

fn stream(seed: u64, id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id);
    rng
}

impl Streams {
    pub fn new(seed: u64) -> Streams {
        Streams {
            tasks: stream(seed, TASKS),
            sampling: stream(seed, SAMPLING),
            minibatch: stream(seed, MINIBATCH),
        }
    }

    pub fn save(&self) -> SavedStreams {
        SavedStreams {
            tasks: SavedRng::of(&self.tasks),
            sampling: SavedRng::of(&self.sampling),
            minibatch: SavedRng::of(&self.minibatch),
        }
    }

    pub fn restore(saved: &SavedStreams) -> Streams {
        Streams {
            tasks: saved.tasks.rng(),
            sampling: saved.sampling.rng(),
            minibatch: saved.minibatch.rng(),
        }
    }
}

/// The evaluation stream: the same at every evaluation of a run, so that evaluations differ
/// only by the policy.
pub fn eval_stream(seed: u64) -> ChaCha8Rng {
    stream(seed, EVAL)
}

/// A ChaCha stream's exact position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRng {
    /// The 32-byte key, hex.
    pub seed: String,
    pub stream: u64,
    /// Word position, decimal (a u128 does not fit JSON numbers).
    pub word_pos: String,
}

impl SavedRng {
    pub fn of(rng: &ChaCha8Rng) -> SavedRng {
        SavedRng {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// The stream at the saved position; a malformed record (hand-edited file) falls back to
    /// the stream's start of a zero key, which [`SavedRng::check`] rejects beforehand.
    pub fn rng(&self) -> ChaCha8Rng {
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = self
                .seed
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(0);
        }
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().unwrap_or(0));
        rng
    }

    /// Whether the record can be restored exactly.
    pub fn check(&self) -> bool {
        self.seed.len() == 64
            && self.seed.chars().all(|c| c.is_ascii_hexdigit())
            && self.word_pos.parse::<u128>().is_ok()
    }
}

/// All saved streams of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedStreams {
    pub tasks: SavedRng,
    pub sampling: SavedRng,
    pub minibatch: SavedRng,
}

impl SavedStreams {
    pub fn check(&self) -> bool {
        self.tasks.check() && self.sampling.check() && self.minibatch.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn saved_stream_continues_exactly() {
        let mut s = Streams::new(7);
        for _ in 0..13 {
            s.sampling.next_u32();
        }
        s.tasks.next_u64();
        let saved = s.save();
        assert!(saved.check());
        let mut r = Streams::restore(&saved);
        for _ in 0..50 {
            assert_eq!(s.sampling.next_u64(), r.sampling.next_u64());
            assert_eq!(s.tasks.next_u32(), r.tasks.next_u32());
            assert_eq!(s.minibatch.next_u32(), r.minibatch.next_u32());
        }
    }

    #[test]
    fn components_draw_from_different_streams() {
        let mut s = Streams::new(7);
        assert_ne!(s.tasks.next_u64(), s.sampling.next_u64());
    }
}
