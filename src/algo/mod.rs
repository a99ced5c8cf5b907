//! The maths of OPRL and its baselines (METHOD.md): advantage estimators, PRM losses, the PPO
//! surrogate and KL penalties, as small pure functions over slices, with candle-tensor forms
//! where gradients must flow.
