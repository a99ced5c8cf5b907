//! The interpreter: executes an [`crate::graph::ExecGraph`] as the OPRL loop on candle
//! (rollout, outcome reward, PRM score and update, advantage, policy update, sync), with
//! evaluation, run directories, checkpoints and resume.
