//! Rule-based outcome rewards: read one signal of the environment's own episode outcome
//! (`env.won`, `env.score`, `env.return`) as the trajectory's outcome reward.

use crate::env::EpisodeOutcome;
use crate::graph::VerifierSignal;

/// The outcome of one trajectory as the reward source sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutcomeReward {
    /// `r_o(tau)`.
    pub reward: f64,
    /// `success(tau)`: the environment's won flag for every verifier signal.
    pub success: bool,
}

/// The outcome reward a verifier reading `signal` gives an episode that ended as `outcome`.
pub fn verify(signal: VerifierSignal, outcome: &EpisodeOutcome) -> OutcomeReward {
    let reward = match signal {
        VerifierSignal::Won => {
            if outcome.won {
                1.0
            } else {
                0.0
            }
        }
        VerifierSignal::Score => outcome.score,
        VerifierSignal::Return => outcome.env_return,
    };
    OutcomeReward {
        reward,
        success: outcome.won,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(won: bool, score: f64, env_return: f64) -> EpisodeOutcome {
        EpisodeOutcome {
            won,
            score,
            env_return,
        }
    }

    #[test]
    fn won_signal_is_binary() {
        let r = verify(VerifierSignal::Won, &outcome(true, 0.3, 8.7));
        assert_eq!(
            r,
            OutcomeReward {
                reward: 1.0,
                success: true
            }
        );
        let r = verify(VerifierSignal::Won, &outcome(false, 0.3, -1.5));
        assert_eq!(
            r,
            OutcomeReward {
                reward: 0.0,
                success: false
            }
        );
    }

    #[test]
    fn score_and_return_pass_through_with_won_as_success() {
        let o = outcome(false, 0.75, -1.2);
        assert_eq!(verify(VerifierSignal::Score, &o).reward, 0.75);
        assert_eq!(verify(VerifierSignal::Return, &o).reward, -1.2);
        assert!(!verify(VerifierSignal::Score, &o).success);
    }
}
