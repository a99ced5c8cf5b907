//! Per-token quantities of a batch (log-probs, process rewards, values, advantages) in one flat
//! layout: the values of every action token in (trajectory, step, token) order, with the offset
//! of each step's tokens.

use super::batch::Trajectory;

/// Where each step's action tokens sit in a flat per-token vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLayout {
    /// Index of each trajectory's first step, then the number of steps: `trajectories + 1`.
    traj_start: Vec<usize>,
    /// Offset of each step's first token, then the number of tokens: `steps + 1`.
    step_start: Vec<usize>,
}

impl TokenLayout {
    /// The layout of the action tokens of `trajs`.
    pub fn of(trajs: &[Trajectory]) -> TokenLayout {
        let mut traj_start = Vec::with_capacity(trajs.len() + 1);
        let mut step_start = vec![0];
        for t in trajs {
            traj_start.push(step_start.len() - 1);
            for s in &t.steps {
                let end = step_start.last().copied().unwrap_or(0) + s.action.len();
                step_start.push(end);
            }
        }
        traj_start.push(step_start.len() - 1);
        TokenLayout {
            traj_start,
            step_start,
        }
    }

    /// Action tokens of the whole batch.
    pub fn tokens(&self) -> usize {
        self.step_start.last().copied().unwrap_or(0)
    }

    /// The flat index range of step `s` of trajectory `t`.
    pub fn range(&self, t: usize, s: usize) -> std::ops::Range<usize> {
        let k = self.traj_start[t] + s;
        self.step_start[k]..self.step_start[k + 1]
    }
}

/// One value per action token of a batch, laid out by a [`TokenLayout`].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenValues<T> {
    layout: TokenLayout,
    values: Vec<T>,
}

impl<T: Copy> TokenValues<T> {
    /// `values` in the layout's order; `None` when the lengths differ.
    pub fn new(layout: TokenLayout, values: Vec<T>) -> Option<TokenValues<T>> {
        (values.len() == layout.tokens()).then_some(TokenValues { layout, values })
    }

    /// Values filled step by step: `step(t, s)` gives the values of step `s` of trajectory `t`,
    /// which must be as long as its action.
    pub fn from_steps<'a>(
        layout: &TokenLayout,
        trajs: &'a [Trajectory],
        step: impl Fn(usize, usize) -> &'a [T],
    ) -> TokenValues<T>
    where
        T: 'a,
    {
        let mut values = Vec::with_capacity(layout.tokens());
        for (t, traj) in trajs.iter().enumerate() {
            for s in 0..traj.steps.len() {
                values.extend_from_slice(step(t, s));
            }
        }
        debug_assert_eq!(values.len(), layout.tokens());
        TokenValues {
            layout: layout.clone(),
            values,
        }
    }

    /// The values of step `s` of trajectory `t`.
    pub fn step(&self, t: usize, s: usize) -> &[T] {
        &self.values[self.layout.range(t, s)]
    }

    /// Every value, in batch order.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    pub fn layout(&self) -> &TokenLayout {
        &self.layout
    }

    /// A value of another type per token, from `f` of the value here.
    pub fn map<U>(&self, f: impl Fn(T) -> U) -> TokenValues<U> {
        TokenValues {
            layout: self.layout.clone(),
            values: self.values.iter().map(|&v| f(v)).collect(),
        }
    }

    /// `f` of the values of `self` and `other` token by token (the same layout).
    pub fn zip_with<U: Copy, V>(
        &self,
        other: &TokenValues<U>,
        f: impl Fn(T, U) -> V,
    ) -> TokenValues<V> {
        debug_assert_eq!(self.layout, other.layout);
        TokenValues {
            layout: self.layout.clone(),
            values: self
                .values
                .iter()
                .zip(&other.values)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        }
    }
}
