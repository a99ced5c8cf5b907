//! The maths of OPRL and its baselines (METHOD.md): advantage estimators, PRM losses, the PPO
//! surrogate and KL penalties, as small pure functions over slices, with candle-tensor forms
//! where gradients must flow.
//!
//! Layout (each file has one job):
//! - [`stats`]: grouping, means, unbiased std, veRL's `masked_mean` / `masked_whiten`;
//! - [`mat`]: [`Mat`], the row-major `[rows, cols]` matrix the slice forms use for token grids;
//! - [`gae`]: GAE with a response mask and batch whitening (veRL);
//! - [`step`]: the `maxabs` pre-scaling and discounted return-to-go of step signals;
//! - [`gigpo`]: verl-agent's GiGPO step groups (identical or difflib-similar anchor states);
//! - [`prm`]: the DPO / Bradley-Terry PRM loss, PRIME's cross-entropy loss and advantage;
//! - [`ppo`]: the clipped surrogate, loss aggregation, entropy bonus, value loss (veRL);
//! - [`kl`]: KL penalties k1/abs/k2/k3 with veRL's clamps;
//! - [`advantage`]: [`evaluate_advantage`], which runs a recipe's [`crate::graph::AdvExpr`] over
//!   a batch of trajectories; this is what the runtime calls.
//!
//! ## What each function matches
//! | function | reference | checked by |
//! |---|---|---|
//! | [`evaluate_advantage`] with `episode(outcome, norm = zscore / mean / rloo)` | veRL `compute_grpo_outcome_advantage` (b178a3cd), `compute_rloo_outcome_advantage` | `verl_grpo_advantage.json`, `verl_rloo_advantage.json` |
//! | [`gae::gae_advantage_return`], [`stats::masked_whiten`] | veRL `compute_gae_advantage_return`, `masked_whiten` | `verl_gae_advantage.json` |
//! | [`ppo::policy_loss`], [`ppo::actor_loss`] | veRL `compute_policy_loss_vanilla` (+ entropy and KL loss as veRL's actor) | `verl_ppo_policy_loss.json` |
//! | [`ppo::agg_loss`], [`ppo::agg_loss_tensor`] | veRL `agg_loss` | `verl_agg_loss.json` |
//! | [`ppo::value_loss`], [`ppo::value_loss_tensor`] | veRL `compute_value_loss` | hand-computed unit test |
//! | [`kl::kl_penalty`], [`kl::kl_penalty_tensor`], [`kl::parse_kl_name`] | veRL `kl_penalty` | `verl_kl_penalty.json` |
//! | [`evaluate_advantage`] with GiGPO's terms, [`gigpo::step_groups`] | verl-agent `gigpo/core_gigpo.py` (796ed310) | `gigpo_advantage.json` |
//! | [`gigpo::difflib_ratio`] | Python `difflib.SequenceMatcher.ratio` | `similarity_reference` |
//! | [`prm::dpo_loss`], [`prm::dpo_loss_tensor`] | METHOD.md step 4 (Bradley-Terry over pairs) | hand-computed unit tests |
//! | [`prm::prime_ce_loss`], [`prm::prime_advantage`] | PRIME `compute_ce_dpo_loss_rm`, `compute_rloo_advantage_return` | hand-computed unit tests |
//! | [`step`] functions, [`evaluate_advantage`] | METHOD.md step 5 and ablations | unit tests; GRPO/RLOO/GiGPO vectors through the evaluator |

pub mod advantage;
pub mod gae;
pub mod gigpo;
pub mod kl;
pub mod mat;
pub mod ppo;
pub mod prm;
pub mod stats;
pub mod step;

pub use advantage::{
    evaluate_advantage, AdvantageInputs, AdvantageOutput, AdvantageParams, StepInput, TermStats,
    TrajectoryInput,
};
pub use mat::Mat;

/// The `eps` every group normaliser adds to the std (METHOD.md, veRL's default).
pub const GROUP_EPS: f32 = 1e-6;

/// Everything that can go wrong in this module: bad shapes and unsupported combinations.
/// Numerical edge cases (groups of one, std 0, fully masked rows) are not errors; they follow
/// the reference implementations' rules, documented on each function.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlgoError {
    /// Two inputs that must have the same length do not.
    #[error("length mismatch: {what} has {got} entries, expected {expected}")]
    LengthMismatch {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    /// `masked_var` with Bessel's correction needs at least two unmasked entries (veRL raises).
    #[error("whitening needs at least two unmasked entries, the mask has {0}")]
    TooFewForWhitening(usize),
    /// A KL penalty name that veRL does not accept (including the `+` straight-through names,
    /// which veRL's `kl_penalty` rejects at the reference commit).
    #[error("unknown KL penalty `{0}` (valid: kl, k1, abs, mse, k2, low_var_kl, k3)")]
    UnknownKlPenalty(String),
    /// An advantage expression that this evaluator cannot run on the given inputs.
    #[error("unsupported advantage expression: {0}")]
    Unsupported(String),
    /// Input values a function cannot use (e.g. a negative gamma).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A candle error in a tensor form.
    #[error("tensor error: {0}")]
    Tensor(String),
}

impl From<candle_core::Error> for AlgoError {
    fn from(e: candle_core::Error) -> Self {
        AlgoError::Tensor(e.to_string())
    }
}

/// Checks that `got == expected`, naming the input in the error.
pub(crate) fn check_len(what: &'static str, got: usize, expected: usize) -> Result<(), AlgoError> {
    if got == expected {
        Ok(())
    } else {
        Err(AlgoError::LengthMismatch {
            what,
            got,
            expected,
        })
    }
}
